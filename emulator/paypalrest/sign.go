package paypalrest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"hash/crc32"
	"math/big"
	"strconv"
	"time"

	"github.com/ipnlab/ipnlab/emulator/intercept"
)

// AuthAlgo and AuthVersion are what PayPal's headers name.
const (
	AuthAlgo    = "SHA256withRSA"
	AuthVersion = "v2"
)

// CertHost is the host PayPal's signing certificates are served from in
// the cert URLs it sends: ipnlab's choice (no source names a current one;
// the URLs seen in the field are on PayPal's API hosts). The emulator
// serves the same path on its own address, and --intercept for the host.
const CertHost = "api.sandbox.paypal.com"

// CertName is the DNS name on the signing certificate: a verifier checks
// that it is PayPal's (PayPal's SDKs: a name under .paypal.com).
const CertName = "messageverificationcerts.paypal.com"

// signer is the key events are signed with, and its certificate, served
// at its cert URL. Rotation makes a new one; the old stays served, so that
// an event signed before the rotation still verifies.
type signer struct {
	Name    string `json:"name"` // CERT-…, the cert URL's last part
	KeyDER  []byte `json:"key"`
	CertDER []byte `json:"cert"`
	// Issuers are the certificates above it: ipnlab's CA's, when the CA
	// issued it; none for a self-signed one.
	Issuers [][]byte        `json:"issuers,omitempty"`
	key     *rsa.PrivateKey `json:"-"`
	// failing counts the fetches of its certificate still to be answered
	// 503 (SendRequest.CertOutage); in memory only.
	failing int
	// at, if set, is its cert URL instead of PayPal's: an attacker's.
	at string
}

// newSigner makes a certificate for key valid for a year from now,
// issued by ca when there is one (a verifier that trusts the CA checks
// the chain, as PayPal's SDKs check PayPal's), else self-signed.
func newSigner(now time.Time, ca *intercept.CA, key *rsa.PrivateKey) (*signer, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("CERT-360caa42-fca2a594-%x", serial.Uint64()&0xffffffff)
	if ca != nil {
		chain, err := ca.Sign(CertName, &key.PublicKey, x509.KeyUsageDigitalSignature, now.Add(-time.Hour), 365*24*time.Hour)
		if err != nil {
			return nil, fmt.Errorf("signing certificate: %w", err)
		}
		return &signer{Name: name, KeyDER: x509.MarshalPKCS1PrivateKey(key), CertDER: chain[0], Issuers: chain[1:], key: key}, nil
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: CertName, Organization: []string{"ipnlab (stands in for PayPal, Inc.)"}},
		DNSNames:     []string{CertName},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("signing certificate: %w", err)
	}
	return &signer{Name: name, CertDER: der, KeyDER: x509.MarshalPKCS1PrivateKey(key), key: key}, nil
}

// load decodes a journaled signer.
func loadSigner(raw []byte) (*signer, error) {
	var s signer
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	key, err := x509.ParsePKCS1PrivateKey(s.KeyDER)
	if err != nil {
		return nil, fmt.Errorf("signer %s: %w", s.Name, err)
	}
	s.key = key
	return &s, nil
}

// CertURL is where a listener fetches the certificate.
func (s *signer) CertURL() string {
	if s.at != "" {
		return s.at
	}
	return "https://" + CertHost + "/v1/notifications/certs/" + s.Name
}

// CertPEM is the certificate as served, followed by its issuers'.
func (s *signer) CertPEM() []byte {
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.CertDER})
	for _, der := range s.Issuers {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	return out
}

// SignedString is what PayPal signs: transmission id, time, the webhook
// id of the subscription that gets the event, and the CRC32 of the raw
// body as an unsigned decimal.
func SignedString(transmissionID, transmissionTime, webhookID string, body []byte) string {
	return transmissionID + "|" + transmissionTime + "|" + webhookID + "|" + strconv.FormatUint(uint64(crc32.ChecksumIEEE(body)), 10)
}

// sign signs the string with SHA256withRSA, base64.
func (s *signer) sign(signed string) (string, error) {
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// verify checks a base64 signature of signed.
func (s *signer) verify(signed, sig string) bool {
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return false
	}
	sum := sha256.Sum256([]byte(signed))
	return rsa.VerifyPKCS1v15(&s.key.PublicKey, crypto.SHA256, sum[:], raw) == nil
}
