package server

import (
	"context"
	"errors"
)

// An Authenticator verifies a username and password (RFC 1929). It returns
// nil to accept, ErrBadCredentials (or an error wrapping it) to refuse.
// Implementations must be safe for concurrent use and should be cheap for
// credentials they have verified before: the gateway calls Authenticate
// on every connection.
type Authenticator interface {
	Authenticate(ctx context.Context, user, password string) error
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(ctx context.Context, user, password string) error

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(ctx context.Context, user, password string) error {
	return f(ctx, user, password)
}

// ErrBadCredentials is returned by authenticators that refuse a user or
// password.
var ErrBadCredentials = errors.New("bad username or password")
