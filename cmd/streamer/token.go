package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/streamer-dev/streamer/internal/auth"
	"github.com/streamer-dev/streamer/internal/commalist"
)

// tokenCommand mints a token with the configured HMAC secret, for
// development and scripts: streamer token --sub alice --subscribe 'user:{sub}'.
func tokenCommand(args []string, stdout io.Writer) error {
	var (
		secret, issuer, jwtAud                 string
		sub, subscribe, publish, audience, alg string
		ttl                                    time.Duration
	)
	s := newSettings("streamer token", stdout)
	s.String(&secret, optJWTSecret)
	s.optionalString(&issuer, optJWTIssuer)
	s.optionalString(&jwtAud, optJWTAudience)
	s.optionalString(&sub, option{"sub", "STREAMER_TOKEN_SUB", "", "the token's sub"})
	s.optionalString(&subscribe, option{"subscribe", "STREAMER_TOKEN_SUBSCRIBE", "", "comma-separated stream patterns the token may subscribe to (* and {sub} allowed)"})
	s.optionalString(&publish, option{"publish", "STREAMER_TOKEN_PUBLISH", "", "comma-separated stream patterns the token may publish to"})
	s.optionalString(&audience, option{"audience", "STREAMER_TOKEN_AUDIENCE", "", "comma-separated streamer.audience values (besides the sub)"})
	s.Duration(&ttl, option{"ttl", "STREAMER_TOKEN_TTL", "1h", "lifetime (exp = now + ttl); 0: no exp"})
	s.String(&alg, option{"alg", "STREAMER_TOKEN_ALG", "HS256", "HS256, HS384 or HS512"})
	if err := s.parse(args, "Usage: streamer token [flags]\n\nPrints a token signed with the HMAC secret."); err != nil {
		return err
	}
	if secret == "" {
		return errors.New("STREAMER_JWT_SECRET (or --jwt-secret) is required")
	}
	tok, err := auth.Mint([]byte(secret), auth.MintOptions{
		Subject:   sub,
		Subscribe: commalist.Split(subscribe),
		Publish:   commalist.Split(publish),
		Audience:  commalist.Split(audience),
		Issuer:    issuer,
		JWTAud:    jwtAud,
		TTL:       ttl,
		Algorithm: alg,
	})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}
