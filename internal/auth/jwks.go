package auth

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// Contract cadence of the JWKS: fetched at start, refreshed every
// JWKSRefreshInterval, refetched on an unknown kid at most once every
// JWKSUnknownKIDInterval.
const (
	JWKSRefreshInterval    = 5 * time.Minute
	JWKSUnknownKIDInterval = 10 * time.Second
)

// jwksMaxBody bounds a JWKS response, jwksFetchTimeout each fetch (also
// the one an unknown kid makes a request wait for).
const (
	jwksMaxBody      = 1 << 20
	jwksFetchTimeout = 10 * time.Second
)

// errKeyNotFound is a kid that is not in the JWKS, even after a refetch.
var errKeyNotFound = errors.New("no key with this kid in the JWKS")

// jwksCache holds the keys of one JWKS URL. The refresh loop (owned by the
// Authorizer's Start/Stop) and unknown-kid refetches (run by the requests
// that need them) both go through fetch, one at a time.
type jwksCache struct {
	url          string
	client       *http.Client
	now          func() time.Time
	unknownEvery time.Duration

	store jwkset.Storage  // replaced wholesale by each successful fetch
	kf    keyfunc.Keyfunc // reads store through refetching

	// sem serialises fetches; lastUnknown is guarded by it.
	sem         chan struct{}
	lastUnknown time.Time
}

func newJWKSCache(url string, client *http.Client, now func() time.Time, unknownEvery time.Duration) (*jwksCache, error) {
	c := &jwksCache{
		url:          url,
		client:       client,
		now:          now,
		unknownEvery: unknownEvery,
		store:        jwkset.NewMemoryStorage(),
		sem:          make(chan struct{}, 1),
	}
	kf, err := keyfunc.New(keyfunc.Options{Storage: refetchingStorage{Storage: c.store, c: c}})
	if err != nil {
		return nil, fmt.Errorf("jwks keyfunc: %w", err)
	}
	c.kf = kf
	return c, nil
}

// refetchingStorage is the JWKS storage as keyfunc sees it: a read of an
// unknown kid triggers one rate-limited refetch before it fails.
type refetchingStorage struct {
	jwkset.Storage
	c *jwksCache
}

func (s refetchingStorage) KeyRead(ctx context.Context, kid string) (jwkset.JWK, error) {
	k, err := s.Storage.KeyRead(ctx, kid)
	if !errors.Is(err, jwkset.ErrKeyNotFound) {
		return k, err
	}
	// Whether this request refetched, waited for another's refetch or was
	// rate limited, the store is read again: a concurrent refetch may have
	// brought the key.
	ferr := s.c.refetchUnknown(ctx)
	k, err = s.Storage.KeyRead(ctx, kid)
	if errors.Is(err, jwkset.ErrKeyNotFound) {
		return k, errors.Join(errKeyNotFound, ferr)
	}
	return k, err
}

// errRateLimited is an unknown-kid refetch refused by the rate limit.
var errRateLimited = errors.New("jwks refetched less than the minimum interval ago")

// refetchUnknown refetches the JWKS for an unknown kid unless one such
// refetch happened within unknownEvery.
func (c *jwksCache) refetchUnknown(ctx context.Context) error {
	if err := c.lock(ctx); err != nil {
		return err
	}
	defer c.unlock()
	now := c.now()
	if !c.lastUnknown.IsZero() && now.Sub(c.lastUnknown) < c.unknownEvery {
		return errRateLimited
	}
	c.lastUnknown = now
	return c.fetchLocked(ctx)
}

// fetch fetches the JWKS and replaces the keys; on error the keys stay.
func (c *jwksCache) fetch(ctx context.Context) error {
	if err := c.lock(ctx); err != nil {
		return err
	}
	defer c.unlock()
	return c.fetchLocked(ctx)
}

// lock takes the fetch semaphore, one fetch at a time, or returns the
// cause of ctx's end while waiting for it.
func (c *jwksCache) lock(ctx context.Context) error {
	select {
	case c.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (c *jwksCache) unlock() { <-c.sem }

func (c *jwksCache) fetchLocked(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return fmt.Errorf("jwks request: %w", err)
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("jwks fetch: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("jwks fetch: status %s", resp.Status)
	}
	var set jwkset.JWKSMarshal
	if err := json.NewDecoder(io.LimitReader(resp.Body, jwksMaxBody)).Decode(&set); err != nil {
		return fmt.Errorf("jwks decode: %w", err)
	}
	keys := make([]jwkset.JWK, 0, len(set.Keys))
	for _, m := range set.Keys {
		// Private false: a symmetric ("oct") key published in a JWKS is
		// never a verification key here, and private parts are ignored.
		k, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil {
			continue // an unsupported or broken key; the others still count
		}
		if algsForKey(publicOf(k.Key())) == nil {
			continue
		}
		keys = append(keys, k)
	}
	if err := c.store.KeyReplaceAll(ctx, keys); err != nil {
		return fmt.Errorf("jwks store: %w", err)
	}
	return nil
}

// keys returns the candidate keys of the JWKS for token: the key of its kid
// (refetching once, rate limited, when the kid is unknown), or every key
// when the token names none.
func (c *jwksCache) keys(ctx context.Context, token *jwt.Token) ([]crypto.PublicKey, error) {
	got, err := c.kf.KeyfuncCtx(ctx)(token)
	if err != nil {
		return nil, err
	}
	switch got := got.(type) {
	case jwt.VerificationKeySet:
		out := make([]crypto.PublicKey, 0, len(got.Keys))
		for _, k := range got.Keys {
			out = append(out, publicOf(k))
		}
		return out, nil
	default:
		return []crypto.PublicKey{publicOf(got)}, nil
	}
}

// publicOf returns the public half of a private key (public key types have
// no Public method), and other keys as they are.
func publicOf(k any) crypto.PublicKey {
	if pk, ok := k.(interface{ Public() crypto.PublicKey }); ok {
		return pk.Public()
	}
	return k
}
