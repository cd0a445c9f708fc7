// Package metricstest reads streamer's metrics the way tests check them:
// one series of a gathered or scraped family picked by its labels, and the
// queries of the Grafana dashboard. It is for tests only.
//
// # Invariants
//
//   - [Find] returns the first series, in the family's order, whose labels
//     include every given name/value pair; nil when none does.
//   - [Value] reads a counter's or a gauge's value, or a histogram's sample
//     count and sum; it returns ok false for any other kind.
//   - [DashboardQueries] fails the test rather than return a panel target
//     without an expression, or no queries at all.
package metricstest
