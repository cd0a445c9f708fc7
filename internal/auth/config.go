package auth

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/rs/zerolog"
)

// Leeway is the clock skew allowed on exp and nbf (the contract's maximum).
// A connection authorised by a token is closed at exp plus Leeway.
const Leeway = 5 * time.Second

// Config is what New needs. With none of Secret, PublicKeyFile and JWKSURL
// set, authorization is off: every stream is public and publishing follows
// AllowAnonymousPublish.
type Config struct {
	// Secret is the HMAC key (STREAMER_JWT_SECRET): HS256/384/512.
	Secret []byte
	// PublicKeyFile is a PEM file of one or more public keys
	// (STREAMER_JWT_PUBLIC_KEY_FILE): RS*/PS*, ES256/384/512, EdDSA.
	PublicKeyFile string
	// JWKSURL is a JWKS endpoint, http or https (STREAMER_JWT_JWKS_URL).
	JWKSURL string
	// Issuer, when set, must equal the token's iss (STREAMER_JWT_ISSUER).
	Issuer string
	// Audience, when set, must be among the token's aud
	// (STREAMER_JWT_AUDIENCE).
	Audience string
	// PublicStreams may be subscribed to without a token
	// (STREAMER_PUBLIC_STREAMS, parsed by ParsePatterns).
	PublicStreams Patterns
	// Cookie names the cookie read for subscriber tokens; "" means
	// DefaultCookie (STREAMER_AUTH_COOKIE).
	Cookie string
	// AllowAnonymousPublish accepts POST /publish without a token
	// (STREAMER_ALLOW_ANONYMOUS_PUBLISH).
	AllowAnonymousPublish bool

	// Logger receives JWKS refresh failures and configuration warnings.
	// The zero Logger discards.
	Logger zerolog.Logger
	// HTTPClient fetches the JWKS; nil means http.DefaultClient. Each
	// fetch is bounded to 10 s whatever the client.
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now. Tests inject one.
	Now func() time.Time
	// JWKSRefreshInterval and JWKSUnknownKIDInterval default to the
	// contract's values; tests shorten them.
	JWKSRefreshInterval    time.Duration
	JWKSUnknownKIDInterval time.Duration
	// TestSignals, when initialised by a test, reports JWKS refreshes.
	TestSignals *TestSignals
}

// Enabled reports whether any key is configured.
func (c *Config) Enabled() bool {
	return len(c.Secret) > 0 || c.PublicKeyFile != "" || c.JWKSURL != ""
}

func (c *Config) withDefaults() (Config, error) {
	cfg := *c
	if cfg.Cookie == "" {
		cfg.Cookie = DefaultCookie
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.JWKSRefreshInterval == 0 {
		cfg.JWKSRefreshInterval = JWKSRefreshInterval
	}
	if cfg.JWKSUnknownKIDInterval == 0 {
		cfg.JWKSUnknownKIDInterval = JWKSUnknownKIDInterval
	}
	if cfg.JWKSRefreshInterval < 0 || cfg.JWKSUnknownKIDInterval < 0 {
		return cfg, errors.New("negative JWKS interval")
	}
	if cfg.JWKSURL != "" {
		u, err := url.Parse(cfg.JWKSURL)
		if err != nil {
			return cfg, fmt.Errorf("jwks url: %w", err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return cfg, fmt.Errorf("jwks url %q: want http(s)://host/...", RedactURL(u))
		}
	}
	return cfg, nil
}
