package auth

import "time"

// Principal is who a request acts for.
type Principal struct {
	// Subject is the token's sub; "" for anonymous requests and for tokens
	// without one.
	Subject string
	// ID is the token's jti, if any: with Subject, what a log line may say
	// about a token.
	ID string
	// Expiry is the token's exp; zero for anonymous requests and tokens
	// without exp.
	Expiry time.Time
	// Audience is the keys an event's audience array is matched against:
	// the sub (if any) followed by the token's streamer.audience values,
	// without duplicates. Empty for anonymous requests, which see only
	// events without an audience.
	Audience []string
	// Token reports whether the request carried a valid token.
	Token bool
}

// Anonymous is the principal of a request without a token.
var Anonymous = Principal{}

// CloseAt is when a connection authorised by this principal must be closed
// (after an event: streamer.reauth): exp plus Leeway. Zero when never.
func (p Principal) CloseAt() time.Time {
	if p.Expiry.IsZero() {
		return time.Time{}
	}
	return p.Expiry.Add(Leeway)
}
