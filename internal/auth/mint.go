package auth

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MintOptions describe a token for Mint.
type MintOptions struct {
	Subject   string
	Subscribe []string
	Publish   []string
	Audience  []string // streamer.audience
	Issuer    string   // iss, when set
	JWTAud    string   // aud, when set
	TTL       time.Duration
	Now       time.Time // issue time; zero means time.Now()
	Algorithm string    // HS256 (default), HS384 or HS512
}

// Mint signs a token with an HMAC secret: for `streamer token`, scripts and
// tests. A TTL of zero gives a token without exp.
func Mint(secret []byte, o MintOptions) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("mint: no secret")
	}
	if o.TTL < 0 {
		return "", fmt.Errorf("mint: negative ttl %s", o.TTL)
	}
	alg := o.Algorithm
	if alg == "" {
		alg = "HS256"
	}
	if !slices.Contains(hmacAlgs, alg) {
		return "", fmt.Errorf("mint: algorithm %q: want one of %v", alg, hmacAlgs)
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	c := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:  o.Subject,
			Issuer:   o.Issuer,
			IssuedAt: jwt.NewNumericDate(now),
		},
		Streamer: StreamerClaims{Subscribe: o.Subscribe, Publish: o.Publish, Audience: o.Audience},
	}
	if o.JWTAud != "" {
		c.Audience = jwt.ClaimStrings{o.JWTAud}
	}
	if o.TTL > 0 {
		c.ExpiresAt = jwt.NewNumericDate(now.Add(o.TTL))
	}
	s, err := jwt.NewWithClaims(jwt.GetSigningMethod(alg), c).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("mint: sign: %w", err)
	}
	return s, nil
}
