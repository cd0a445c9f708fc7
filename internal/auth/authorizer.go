package auth

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/streamer-dev/streamer/internal/startstop"
	"github.com/streamer-dev/streamer/internal/testsignal"
)

// TestSignals are the moments tests wait for; inert unless initialised.
type TestSignals struct {
	// JWKSRefreshed carries the result of each periodic JWKS refresh.
	JWKSRefreshed testsignal.TestSignal[error]
}

// Init initialises every signal.
func (s *TestSignals) Init() { s.JWKSRefreshed.Init() }

// Authorizer decides GET /events and POST /publish requests. Its methods
// are safe for concurrent use. When a JWKS URL is configured it owns the
// refresh loop: Start fetches the keys and starts the loop, Stop ends it.
type Authorizer struct {
	startstop.Base
	cfg     Config
	enabled bool
	secret  []byte
	pemKeys []crypto.PublicKey
	jwks    *jwksCache // nil without a JWKS URL
	algs    []string   // accepted algorithms, from the key kinds
	parser  *jwt.Parser
	signals *TestSignals
}

var _ startstop.Service = (*Authorizer)(nil)

// New checks cfg, reads the PEM file and returns an Authorizer. It does no
// network I/O: the JWKS is fetched by Start.
func New(cfg Config) (*Authorizer, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	a := &Authorizer{cfg: cfg, enabled: cfg.Enabled(), signals: cfg.TestSignals}
	if a.signals == nil {
		a.signals = &TestSignals{} // inert
	}
	if len(cfg.Secret) > 0 {
		a.secret = slices.Clone(cfg.Secret)
		a.algs = append(a.algs, hmacAlgs...)
		if len(cfg.Secret) < 32 {
			cfg.Logger.Warn().Int("bytes", len(cfg.Secret)).Msg("jwt secret shorter than 32 bytes: easy to guess offline")
		}
	}
	if cfg.PublicKeyFile != "" {
		keys, err := ReadPublicKeys(cfg.PublicKeyFile)
		if err != nil {
			return nil, err
		}
		a.pemKeys = keys
		for _, k := range keys {
			a.algs = append(a.algs, algsForKey(k)...)
		}
	}
	if cfg.JWKSURL != "" {
		a.jwks, err = newJWKSCache(cfg.JWKSURL, cfg.HTTPClient, cfg.Now, cfg.JWKSUnknownKIDInterval)
		if err != nil {
			return nil, err
		}
		// The JWKS's key kinds change over time: every asymmetric
		// algorithm is accepted here, and keyFits checks each key.
		a.algs = append(a.algs, rsaAlgs...)
		a.algs = append(a.algs, ecAlgs...)
		a.algs = append(a.algs, ed25519Algs...)
	}
	slices.Sort(a.algs)
	a.algs = slices.Compact(a.algs)
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(a.algs),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(cfg.Now),
	}
	// iss and aud are checked by verify, so that a missing claim and a
	// wrong one give the same reason.
	a.parser = jwt.NewParser(opts...)
	return a, nil
}

// Enabled reports whether a key is configured (authorization is on).
func (a *Authorizer) Enabled() bool { return a.enabled }

// Algorithms returns the accepted signing algorithms, sorted.
func (a *Authorizer) Algorithms() []string { return slices.Clone(a.algs) }

// Start fetches the JWKS, if one is configured, and starts refreshing it
// every JWKSRefreshInterval. A failed first fetch fails Start: a server
// that could verify no token would refuse every protected request.
func (a *Authorizer) Start(ctx context.Context) error {
	ctx, shouldStart, started, stopped := a.StartInit(ctx)
	if !shouldStart {
		return nil
	}
	if a.jwks != nil {
		if err := a.jwks.fetch(ctx); err != nil {
			byStop := errors.Is(context.Cause(ctx), startstop.ErrStop)
			stopped() // cancels ctx with ErrStop: read the cause first
			if byStop {
				return nil // Stop ran during Start: stopped as asked
			}
			return fmt.Errorf("auth: first jwks fetch from %s: %w", redactString(a.cfg.JWKSURL), err)
		}
	}
	go func() {
		started()
		defer stopped()
		if a.jwks == nil {
			<-ctx.Done()
			return
		}
		a.refreshLoop(ctx)
	}()
	return nil
}

func (a *Authorizer) refreshLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.JWKSRefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := a.jwks.fetch(ctx)
		if err != nil && ctx.Err() == nil {
			a.cfg.Logger.Error().Err(err).Str("jwks_url", redactString(a.cfg.JWKSURL)).Msg("jwks refresh failed; keeping the previous keys")
		}
		a.signals.JWKSRefreshed.Signal(err)
	}
}

// Subscriber authorizes a GET /events request for streams. The token is
// read from the Authorization header, else the cookie, else the
// access_token query parameter. Without a configured key every stream is
// public. Without a token, every stream must be public. A token that is
// offered must be valid, even for public streams, and every stream must be
// public or match one of its subscribe patterns.
func (a *Authorizer) Subscriber(r *http.Request, streams []string) (Principal, *Error) {
	if !a.enabled {
		return Anonymous, nil
	}
	tok, src := SubscriberToken(r, a.cfg.Cookie)
	if src == SourceNone {
		for _, s := range streams {
			if !a.cfg.PublicStreams.Match(s, "") {
				return Anonymous, noTokenError("subscribing to", s)
			}
		}
		return Anonymous, nil
	}
	p, c, aerr := a.verify(r.Context(), tok)
	if aerr != nil {
		return Anonymous, aerr
	}
	for _, s := range streams {
		if a.cfg.PublicStreams.Match(s, "") || matchAny(c.Streamer.Subscribe, s, c.Subject) {
			continue
		}
		return Anonymous, forbiddenError("subscribing to", s)
	}
	return p, nil
}

// PublishGrant is what a POST /publish request may do, decided from its
// headers alone, before the body is read: an unauthenticated client then
// never gets its body read. Allow checks the events' streams afterwards.
type PublishGrant struct {
	// Principal is who publishes (Anonymous without a token).
	Principal Principal
	any       bool     // anonymous publishing: every stream
	patterns  []string // the token's publish patterns
}

// PublishGrant authorizes a POST /publish request as far as its headers
// allow. The token is read from the Authorization header only. With
// anonymous publishing on, a request without a token is allowed, and so
// is any stream of a valid token; a token that is offered must still be
// valid.
func (a *Authorizer) PublishGrant(r *http.Request) (PublishGrant, *Error) {
	tok, src := PublisherToken(r)
	switch {
	case !a.enabled && a.cfg.AllowAnonymousPublish, a.enabled && src == SourceNone && a.cfg.AllowAnonymousPublish:
		return PublishGrant{Principal: Anonymous, any: true}, nil
	case !a.enabled:
		return PublishGrant{}, &Error{Reason: ReasonNoToken, Message: msgNoPublishKey}
	case src == SourceNone:
		return PublishGrant{}, noTokenError("publishing to", "")
	}
	p, c, aerr := a.verify(r.Context(), tok)
	if aerr != nil {
		return PublishGrant{}, aerr
	}
	return PublishGrant{Principal: p, any: a.cfg.AllowAnonymousPublish, patterns: c.Streamer.Publish}, nil
}

// msgNoPublishKey explains a refusal no token can avoid.
const msgNoPublishKey = "no token: publishing needs credentials and no key is configured; " +
	"to accept POST /publish without credentials set STREAMER_ALLOW_ANONYMOUS_PUBLISH=true (or --allow-anonymous-publish)"

// Allow checks every stream of the request's events (duplicates are
// fine) against the grant: 403 naming the first stream not allowed.
func (g PublishGrant) Allow(streams []string) *Error {
	if g.any {
		return nil
	}
	for _, s := range streams {
		if !matchAny(g.patterns, s, g.Principal.Subject) {
			return forbiddenError("publishing to", s)
		}
	}
	return nil
}

// Publisher is PublishGrant and Allow in one call, for callers that have
// the streams at hand.
func (a *Authorizer) Publisher(r *http.Request, streams []string) (Principal, *Error) {
	g, aerr := a.PublishGrant(r)
	if aerr == nil {
		aerr = g.Allow(streams)
	}
	if aerr != nil {
		return Anonymous, aerr
	}
	return g.Principal, nil
}

// Claims is what streamer reads from a token.
type Claims struct {
	jwt.RegisteredClaims
	Streamer StreamerClaims `json:"streamer"`
}

// StreamerClaims is the token's "streamer" object.
type StreamerClaims struct {
	Subscribe []string `json:"subscribe,omitempty"`
	Publish   []string `json:"publish,omitempty"`
	Audience  []string `json:"audience,omitempty"`
}

// verify parses and verifies tok and returns its principal and claims.
func (a *Authorizer) verify(ctx context.Context, tok string) (Principal, *Claims, *Error) {
	var c Claims
	t, err := a.parser.ParseWithClaims(tok, &c, func(t *jwt.Token) (any, error) {
		return a.key(ctx, t)
	})
	if err != nil {
		return Anonymous, nil, a.classify(t, err)
	}
	if a.cfg.Issuer != "" && c.Issuer != a.cfg.Issuer {
		return Anonymous, nil, newError(ReasonIssuer, nil)
	}
	if a.cfg.Audience != "" && !slices.Contains(c.Audience, a.cfg.Audience) {
		return Anonymous, nil, newError(ReasonAudience, nil)
	}
	p := Principal{Subject: c.Subject, ID: c.ID, Token: true}
	if c.ExpiresAt != nil {
		p.Expiry = c.ExpiresAt.Time
	}
	if c.Subject != "" {
		p.Audience = append(p.Audience, c.Subject)
	}
	for _, k := range c.Streamer.Audience {
		if k != "" && !slices.Contains(p.Audience, k) {
			p.Audience = append(p.Audience, k)
		}
	}
	return p, &c, nil
}

// Errors of the key function, classified by classify.
var (
	errRefusedAlg = errors.New("signing algorithm not accepted")
	errNoKey      = errors.New("no configured key fits the token")
)

// key is the jwt.Keyfunc: the key for an HMAC algorithm is the secret; for
// an asymmetric one, every configured public key of a fitting kind (the PEM
// file's and the JWKS's for the token's kid). The parser already refused
// algorithms outside a.algs; the check is repeated so that this function is
// safe on its own.
func (a *Authorizer) key(ctx context.Context, t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	if !slices.Contains(a.algs, alg) {
		return nil, errRefusedAlg
	}
	if slices.Contains(hmacAlgs, alg) {
		if a.secret == nil {
			return nil, errRefusedAlg
		}
		return a.secret, nil
	}
	var set jwt.VerificationKeySet
	for _, k := range a.pemKeys {
		if keyFits(alg, k) {
			set.Keys = append(set.Keys, k)
		}
	}
	var jerr error
	if a.jwks != nil {
		keys, err := a.jwks.keys(ctx, t)
		jerr = err
		for _, k := range keys {
			if keyFits(alg, k) {
				set.Keys = append(set.Keys, k)
			}
		}
	}
	if len(set.Keys) == 0 {
		return nil, errors.Join(errNoKey, jerr)
	}
	return set, nil
}

// classify maps a golang-jwt error to the refusal. Claim errors can come
// together; expired wins over not yet valid.
func (a *Authorizer) classify(t *jwt.Token, err error) *Error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return newError(ReasonMalformed, err)
	case t != nil && t.Method != nil && !slices.Contains(a.algs, t.Method.Alg()),
		errors.Is(err, errRefusedAlg):
		// The parser reports an algorithm outside WithValidMethods
		// (including "none") as an invalid signature; the token it
		// returns tells the two apart.
		return newError(ReasonAlgorithm, err)
	case errors.Is(err, errNoKey):
		return newError(ReasonUnknownKey, err)
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// No alg, or one golang-jwt does not know.
		return newError(ReasonAlgorithm, err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return newError(ReasonSignature, err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return newError(ReasonExpired, err)
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return newError(ReasonNotYetValid, err)
	default:
		return newError(reasonInvalidClaims, err)
	}
}
