package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/rs/zerolog"

	"github.com/streamer-dev/streamer/internal/auth"
	"github.com/streamer-dev/streamer/internal/clientaddr"
	"github.com/streamer-dev/streamer/internal/commalist"
	"github.com/streamer-dev/streamer/internal/cors"
)

// authFlags are the settings of authorization, CORS and the per-address
// limit (issue #11): serveConfig.Auth, bound by serveConfig.bind; serve
// builds the pieces with authorizer, cors and clientAddr.
type authFlags struct {
	JWTSecret           string
	JWTPublicKeyFile    string
	JWTJWKSURL          string
	JWTIssuer           string
	JWTAudience         string
	PublicStreams       string
	AuthCookie          string
	CORSOrigins         string
	TrustedProxies      string
	MaxConnectionsPerIP int
}

var (
	optJWTSecret      = option{"jwt-secret", "STREAMER_JWT_SECRET", "", "HMAC key: tokens signed HS256/HS384/HS512 (prefer the variable: flags show in ps)"}
	optJWTIssuer      = option{"jwt-issuer", "STREAMER_JWT_ISSUER", "", "when set, a token's iss must equal it"}
	optJWTAudience    = option{"jwt-audience", "STREAMER_JWT_AUDIENCE", "", "when set, a token's aud must contain it"}
	optJWTKeyFile     = option{"jwt-public-key-file", "STREAMER_JWT_PUBLIC_KEY_FILE", "", "PEM file with one or more public keys (RSA, ECDSA P-256/P-384/P-521, Ed25519)"}
	optJWTJWKSURL     = option{"jwt-jwks-url", "STREAMER_JWT_JWKS_URL", "", "JWKS endpoint (http or https), fetched at start, refreshed every 5m, refetched on an unknown kid at most every 10s"}
	optPublicStreams  = option{"public-streams", "STREAMER_PUBLIC_STREAMS", "", "comma-separated stream patterns anyone may subscribe to without a token"}
	optAuthCookie     = option{"auth-cookie", "STREAMER_AUTH_COOKIE", auth.DefaultCookie, "name of the cookie read for subscriber tokens"}
	optCORSOrigins    = option{"cors-origins", "STREAMER_CORS_ORIGINS", "", "comma-separated allowed origins (* allowed only without credentials)"}
	optTrustedProxies = option{"trusted-proxies", "STREAMER_TRUSTED_PROXIES", "", "comma-separated CIDRs whose X-Forwarded-For names the client"}
	optMaxConnsPerIP  = option{"max-connections-per-ip", "STREAMER_MAX_CONNECTIONS_PER_IP", "0", "SSE connections per client address; beyond it 429; 0: no limit"}
)

func (a *authFlags) bind(s *settings) {
	s.optionalString(&a.JWTSecret, optJWTSecret)
	s.optionalString(&a.JWTPublicKeyFile, optJWTKeyFile)
	s.optionalString(&a.JWTJWKSURL, optJWTJWKSURL)
	s.optionalString(&a.JWTIssuer, optJWTIssuer)
	s.optionalString(&a.JWTAudience, optJWTAudience)
	s.optionalString(&a.PublicStreams, optPublicStreams)
	s.String(&a.AuthCookie, optAuthCookie)
	s.optionalString(&a.CORSOrigins, optCORSOrigins)
	s.optionalString(&a.TrustedProxies, optTrustedProxies)
	s.Int(&a.MaxConnectionsPerIP, optMaxConnsPerIP)
}

// optionalString binds a string option that may stay empty: --help shows
// its default as "(none)" rather than "(required)".
func (s *settings) optionalString(p *string, o option) {
	shown := o
	shown.def = "(none)"
	s.options = append(s.options, shown)
	v, _ := os.LookupEnv(o.env)
	s.fs.StringVar(p, o.flag, v, o.usage)
}

// authorizer builds the Authorizer; anonPublish is serveConfig.AnonPublish.
// The caller starts it before serving and stops it after.
func (a authFlags) authorizer(anonPublish bool, log zerolog.Logger) (*auth.Authorizer, error) {
	public, err := auth.ParsePatterns(a.PublicStreams)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", optPublicStreams.env, err)
	}
	if a.AuthCookie == "" {
		return nil, fmt.Errorf("%s: empty cookie name", optAuthCookie.env)
	}
	return auth.New(auth.Config{
		Secret:                []byte(a.JWTSecret),
		PublicKeyFile:         a.JWTPublicKeyFile,
		JWKSURL:               a.JWTJWKSURL,
		Issuer:                a.JWTIssuer,
		Audience:              a.JWTAudience,
		PublicStreams:         public,
		Cookie:                a.AuthCookie,
		AllowAnonymousPublish: anonPublish,
		Logger:                log,
	})
}

// cors builds the CORS middleware for GET /events and POST /publish.
func (a authFlags) cors() (*cors.CORS, error) {
	c, err := cors.New(cors.Config{Origins: commalist.Split(a.CORSOrigins), Paths: []string{"/events", "/publish"}})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", optCORSOrigins.env, err)
	}
	return c, nil
}

// clientAddr builds the address resolver and the per-address limiter.
func (a authFlags) clientAddr() (*clientaddr.Resolver, *clientaddr.Limiter, error) {
	if a.MaxConnectionsPerIP < 0 {
		return nil, nil, errors.New(optMaxConnsPerIP.env + ": must not be negative")
	}
	res, err := clientaddr.NewResolver(commalist.Split(a.TrustedProxies))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", optTrustedProxies.env, err)
	}
	return res, clientaddr.NewLimiter(a.MaxConnectionsPerIP, 0, res.Addr), nil
}
