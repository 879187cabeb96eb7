package api

import "time"

// The accounts API of a sandbox (package sandbox; admin token).

// Account is a merchant account of a sandbox.
type Account struct {
	ID            string    `json:"id"`
	Name          string    `json:"name"`
	ReceiverEmail string    `json:"receiver_email"`
	ReceiverID    string    `json:"receiver_id"`
	Created       time.Time `json:"created"`
}

// NewAccount is POST /api/v1/accounts.
type NewAccount struct {
	Name          string `json:"name"`
	ReceiverEmail string `json:"receiver_email"`
	ReceiverID    string `json:"receiver_id"`
	// NotifyURL is the account's IPN URL to start with (notifications on);
	// empty: off until the account sets its profile.
	NotifyURL string `json:"notify_url"`
}

// AccountToken is an account with the API token it was just given (shown
// once: the sandbox keeps only its hash).
type AccountToken struct {
	Account Account `json:"account"`
	Token   string  `json:"token"`
	// PayDoToken is the lookup token of the account's default PayDo
	// project, drawn for it (a sandbox routes PayDo's status lookups
	// by token). Shown when the account is created.
	PayDoToken string `json:"paydo_token,omitempty"`
}

// Accounts is GET /api/v1/accounts.
type Accounts struct {
	Accounts []Account `json:"accounts"`
}
