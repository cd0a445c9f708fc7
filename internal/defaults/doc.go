// Package defaults fills the unset fields of a service's Config: the one
// rule, written once, by which zero (and, for sizes and durations,
// negative) values take a package's documented default.
//
// # Invariants
//
//   - [Positive] leaves a value above zero as it is and replaces any other
//     (zero or negative) with the default.
//   - [ZeroOrOff] replaces zero with the default, turns a negative value
//     into zero ("off"), and leaves a value above zero as it is.
//   - Both only write through the pointer they are given; they hold no
//     state.
package defaults
