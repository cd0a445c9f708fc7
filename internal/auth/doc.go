// Package auth decides who may subscribe to and publish on which streams:
// JWT extraction and verification, stream patterns, refusals in the form
// RFC 6750 asks for, and redaction of tokens from logged URLs.
//
// # Overview
//
// [New] turns a [Config] (HMAC secret, PEM file of public keys, JWKS URL,
// issuer, audience, public stream patterns, cookie name, anonymous
// publishing) into an [*Authorizer]. Without any key, authorization is off:
// every stream is public and publishing follows AllowAnonymousPublish.
//
// The Authorizer is a [startstop.Service]: with a JWKS URL, Start fetches
// the keys (failing if it cannot) and refreshes them every
// [JWKSRefreshInterval]; a token with an unknown kid makes the request
// refetch the JWKS, at most once every [JWKSUnknownKIDInterval]. Without a
// JWKS URL Start and Stop only keep the lifecycle contract.
//
// # Where the server calls it
//
// GET /events, after the stream names were validated (400 comes first):
//
//	p, aerr := authz.Subscriber(r, streams)
//	if aerr != nil {
//		metrics.AuthFailures.Inc()
//		log.Info().Str("reason", string(aerr.Reason)).Err(aerr).
//			Str("url", auth.RedactRequestURI(r)).Msg("refused")
//		auth.WriteError(w, aerr) // 401/403, WWW-Authenticate, JSON
//		return
//	}
//	// p.Audience: the keys matched against events' audience arrays
//	// (none for anonymous connections: only audience-NULL events).
//	// p.CloseAt(): when non-zero, send event: streamer.reauth and close
//	// the connection then (exp plus Leeway).
//
// POST /publish, in two steps so that the body of an unauthenticated
// request is never read: the grant from the headers first (this replaces
// server.PublishConfig.Authorize and its AllowAnonymous check, which
// PublishGrant already applies), then the streams of the decoded events
// (duplicates allowed):
//
//	grant, aerr := authz.PublishGrant(r) // before reading the body
//	if aerr != nil {
//		auth.WriteError(w, aerr)
//		return
//	}
//	// ... read and decode the body ...
//	if aerr := grant.Allow(streams); aerr != nil {
//		auth.WriteError(w, aerr) // 403 naming the stream
//		return
//	}
//
// CORS (internal/cors) and the client address and per-address limit
// (internal/clientaddr) are separate middlewares; their doc.go files show
// where they mount.
//
// Every log line that names a request's URL uses [RedactRequestURI] (or
// [RedactURL]); none logs the Authorization or Cookie header. A log line
// may name the principal's Subject and ID (jti), never the token.
//
// cmd/streamer starts the Authorizer before the HTTP server and stops it
// after, like every other service.
//
// # Invariants
//
//   - Accepted algorithms follow from the configured keys only: HS256/384/
//     512 for a secret, RS*/PS* for RSA keys, ES256/384/512 for P-256/384/
//     521 keys, EdDSA for Ed25519 keys, every asymmetric one for a JWKS.
//     "none" is never accepted, and a key is used only for algorithms of
//     its kind (an HMAC algorithm never gets a public key: no algorithm
//     confusion).
//   - exp and nbf are enforced when present with [Leeway] (5 s); iss and
//     aud when configured, a missing claim counting as a wrong one.
//   - A subscriber's token comes from the Authorization header, else the
//     cookie, else the access_token query parameter; the first place that
//     holds one decides, valid or not. A publisher's comes from the header
//     only.
//   - A token that is offered must be valid, even where none is needed
//     (public streams, anonymous publishing).
//   - A request is allowed only if every stream is allowed; the refusal
//     names the first stream that is not.
//   - Refusals: no token is 401 "Bearer"; a bad token 401
//     `Bearer error="invalid_token"`; a valid token without the stream 403
//     `Bearer error="insufficient_scope"`. The JSON body says which
//     (reason) and names the stream where one is at fault.
//   - No error, message or log line of this package contains a token.
//   - Public stream patterns match with no sub: "{sub}" in them matches
//     nothing.
//   - The JWKS keys are replaced only by a successful fetch; a failed one
//     keeps the previous keys. Fetches run one at a time, each bounded to
//     10 s; symmetric ("oct") keys in a JWKS are ignored.
//   - An unknown kid refetches the JWKS at most once per
//     [JWKSUnknownKIDInterval], whatever the number of requests; a request
//     refused by that limit is not held up.
//   - The body of a POST /publish whose headers do not authorize it need
//     not be read: [Authorizer.PublishGrant] decides from the headers.
//   - The refresh goroutine is the Authorizer's own: Stop returns after it
//     exited.
package auth
