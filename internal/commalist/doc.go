// Package commalist splits the comma-separated lists of the command lines
// (token patterns, CORS origins, trusted proxies; the load tool's scenarios
// and targets).
//
// # Invariants
//
//   - [Split] returns the items between commas, each trimmed of white
//     space, blanks dropped, in order; nil when none is left.
package commalist
