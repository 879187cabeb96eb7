package client

import (
	"context"
	"net/url"

	"github.com/ipnlab/ipnlab/emulator/api"
)

// A sandbox's accounts (package sandbox), managed with its admin token
// (WithToken).

// CreateAccount adds a merchant account; its token is in the answer, once.
func (c *Client) CreateAccount(ctx context.Context, req api.NewAccount) (api.AccountToken, error) {
	var out api.AccountToken
	return out, c.do(ctx, "POST", "/api/v1/accounts", req, &out)
}

// Accounts lists the accounts, oldest first.
func (c *Client) Accounts(ctx context.Context) ([]api.Account, error) {
	var out api.Accounts
	return out.Accounts, c.do(ctx, "GET", "/api/v1/accounts", nil, &out)
}

// RotateToken gives an account a new token; the old one stops working.
func (c *Client) RotateToken(ctx context.Context, id string) (api.AccountToken, error) {
	var out api.AccountToken
	return out, c.do(ctx, "POST", "/api/v1/accounts/"+url.PathEscape(id)+"/rotate-token", nil, &out)
}

// DeleteAccount removes an account and everything it kept.
func (c *Client) DeleteAccount(ctx context.Context, id string) error {
	return c.do(ctx, "DELETE", "/api/v1/accounts/"+url.PathEscape(id), nil, nil)
}
