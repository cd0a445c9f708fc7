package auth

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// Reason is why a request was refused, for metrics labels and tests.
type Reason string

// The reasons. Each maps to one status and WWW-Authenticate value (RFC 6750):
// ReasonNoToken is 401 "Bearer"; ReasonForbidden is 403
// `Bearer error="insufficient_scope"`; every other reason is 401
// `Bearer error="invalid_token"`.
const (
	ReasonNoToken       Reason = "no_token"
	ReasonMalformed     Reason = "malformed"
	ReasonAlgorithm     Reason = "algorithm"
	ReasonUnknownKey    Reason = "unknown_key"
	ReasonSignature     Reason = "signature"
	ReasonExpired       Reason = "expired"
	ReasonNotYetValid   Reason = "not_yet_valid"
	ReasonIssuer        Reason = "issuer"
	ReasonAudience      Reason = "audience"
	ReasonForbidden     Reason = "insufficient_scope"
	reasonInvalidClaims Reason = "invalid_claims" // a claim of the wrong shape
)

// messages are the JSON error texts; none includes anything of the token.
var messages = map[Reason]string{
	ReasonNoToken:       "no token: this request needs a bearer token",
	ReasonMalformed:     "invalid token: malformed",
	ReasonAlgorithm:     "invalid token: signing algorithm not accepted",
	ReasonUnknownKey:    "invalid token: no key to verify it with",
	ReasonSignature:     "invalid token: bad signature",
	ReasonExpired:       "invalid token: expired",
	ReasonNotYetValid:   "invalid token: not valid yet (nbf)",
	ReasonIssuer:        "invalid token: wrong issuer",
	ReasonAudience:      "invalid token: wrong audience",
	reasonInvalidClaims: "invalid token: invalid claims",
}

// Error is a refusal: what the client is told (Status, WWWAuthenticate,
// Message, Stream) and, for logs, the cause. It never holds the token.
type Error struct {
	Reason Reason
	// Stream is the refused stream (403, and 401 without a token); "" when
	// the refusal is about the token itself.
	Stream string
	// Message is the JSON "error" text.
	Message string
	cause   error
}

func newError(r Reason, cause error) *Error {
	return &Error{Reason: r, Message: messages[r], cause: cause}
}

func noTokenError(verb, stream string) *Error {
	msg := fmt.Sprintf("no token: %s stream %q needs a bearer token", verb, stream)
	if stream == "" {
		msg = fmt.Sprintf("no token: %s needs a bearer token", strings.TrimSuffix(verb, " to"))
	}
	return &Error{Reason: ReasonNoToken, Stream: stream, Message: msg}
}

func forbiddenError(verb, stream string) *Error {
	return &Error{
		Reason:  ReasonForbidden,
		Stream:  stream,
		Message: fmt.Sprintf("insufficient scope: the token does not allow %s stream %q", verb, stream),
	}
}

// Status is the HTTP status of the refusal: 403 for insufficient scope,
// else 401.
func (e *Error) Status() int {
	if e.Reason == ReasonForbidden {
		return http.StatusForbidden
	}
	return http.StatusUnauthorized
}

// WWWAuthenticate is the header value of the refusal (RFC 6750 section 3).
func (e *Error) WWWAuthenticate() string {
	switch e.Reason {
	case ReasonNoToken:
		return "Bearer"
	case ReasonForbidden:
		return `Bearer error="insufficient_scope"`
	default:
		return `Bearer error="invalid_token"`
	}
}

// Error is the message and, when there is one, the cause: for logs.
func (e *Error) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("auth: %s: %v", e.Message, e.cause)
	}
	return "auth: " + e.Message
}

// Unwrap returns the cause (a golang-jwt error, a key lookup error), if any.
func (e *Error) Unwrap() error { return e.cause }

// body is the JSON of a refusal.
type body struct {
	Error  string `json:"error"`
	Reason Reason `json:"reason"`
	Stream string `json:"stream,omitempty"`
}

// WriteError writes the refusal e: its status, WWW-Authenticate, and the
// JSON body {"error": "...", "reason": "...", "stream": "..."}.
func WriteError(w http.ResponseWriter, e *Error) {
	h := w.Header()
	h.Set("WWW-Authenticate", e.WWWAuthenticate())
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(e.Status())
	// The body is a few hundred bytes of strings; Encode cannot fail on it
	// and a write error means the client is gone.
	_ = json.NewEncoder(w).Encode(body{Error: e.Message, Reason: e.Reason, Stream: e.Stream})
}
