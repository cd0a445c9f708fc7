// Package cors answers CORS preflights and adds CORS headers for the
// origins in STREAMER_CORS_ORIGINS, and for no other.
//
// # Overview
//
// [New] takes the allowlist and the paths it governs; [CORS.Handler] is a
// middleware. A listed origin gets its own value back in
// Access-Control-Allow-Origin with Access-Control-Allow-Credentials: true,
// so that cookie authentication works cross-site. "*" in the list lets
// every other origin read responses without credentials (browsers refuse
// "*" with credentials). A preflight (OPTIONS with
// Access-Control-Request-Method) from an allowed origin for an allowed
// method and headers is answered 204; any other preflight 403.
//
// # Where the server calls it
//
//	c, err := cors.New(cors.Config{
//		Origins: origins, // STREAMER_CORS_ORIGINS, split at commas
//		Paths:   []string{"/events", "/publish"},
//	})
//	r.Use(c.Handler) // on the root router, before routing: chi answers
//	                 // 405 to an OPTIONS for which no route exists
//
// # Invariants
//
//   - An origin not in the list (and no "*") never gets an
//     Access-Control-Allow-* header, on a preflight or any other response.
//   - Credentials are allowed only for origins listed by name, never with
//     "*".
//   - With no origins configured the middleware is the next handler
//     itself: no header, no preflight answer.
//   - Responses on governed paths carry Vary: Origin, so that caches keep
//     one answer per origin.
//   - Requests outside Paths pass through untouched.
package cors
