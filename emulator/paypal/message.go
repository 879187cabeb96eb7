// Package paypal is the fake PayPal: it turns fields into IPN messages,
// hands them to the delivery engine with PayPal's headers and schedule,
// answers postbacks at /cgi-bin/webscr with VERIFIED or INVALID, records
// every postback with the exact rule a bad one broke, and injects verifier
// faults on request.
package paypal

import (
	"crypto/rand"
	"fmt"
	"time"

	"github.com/ipnlab/ipnlab/form"
)

// UserAgent is the header PayPal's IPN deliveries carry.
const UserAgent = "PayPal IPN ( https://www.paypal.com/ipn )"

// Message is one IPN as PayPal sent it. It is not changed after creation.
type Message struct {
	ID         string
	Fields     form.Form // raw bytes, in Charset
	Body       []byte
	ResendBody []byte // Body with resend=true, sent on manual resends
	Charset    form.Charset
	Kind       string
	TxnID      string
	VerifySign string
	TrackID    string
	Sandbox    bool
	NotifyURL  string // the per-payment URL, if any
	Created    time.Time
	Seed       uint64 // the fixture seed it was generated from (0: not generated)
}

// newMessage builds a message from the exact bytes to send.
func newMessage(id string, body []byte, kind string) (*Message, error) {
	fields, err := form.Parse(body)
	if err != nil {
		return nil, fmt.Errorf("message %s: %w", id, err)
	}
	if len(fields) == 0 {
		return nil, fmt.Errorf("message %s: no fields", id)
	}
	cs, err := fields.Charset()
	if err != nil {
		return nil, fmt.Errorf("message %s: %w", id, err)
	}
	if kind == "" {
		kind = KindOf(fields)
	}
	resend := make([]byte, 0, len(body)+12)
	resend = append(append(resend, body...), "&resend=true"...)
	return &Message{
		ID: id, Fields: fields, Body: body, ResendBody: resend, Charset: cs, Kind: kind,
		TxnID: fields.Value("txn_id"), VerifySign: fields.Value("verify_sign"),
		TrackID: fields.Value("ipn_track_id"), Sandbox: fields.Value("test_ipn") == "1",
	}, nil
}

// KindOf names a message's kind from its fields: txn_type, else the Adaptive
// Payments transaction_type, else (refunds, reversals and other messages
// with no txn_type) the payment_status.
func KindOf(f form.Form) string {
	if k := f.Value("txn_type"); k != "" {
		return k
	}
	if k := f.Value("transaction_type"); k != "" {
		return k
	}
	return f.Value("payment_status")
}

// newID returns a 17-character id in the style of PayPal's message ids.
func newID() string {
	const alphabet = "0123456789ABCDEFGHJKLMNPRSTUVWXY" // 32 symbols
	var b [17]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	for i := range b {
		b[i] = alphabet[b[i]&31]
	}
	return string(b[:])
}
