// Package rules holds the contract's rules for what a publisher may store,
// in Go: the stream-name rule, the event-type rules and the data bound. The
// database enforces the same rules with CHECK constraints
// (migrations/*.sql); the server checks a stream name with [Stream] before
// it subscribes, and the batcher checks an event before it can fail a batch.
//
// # Invariants
//
//   - [Stream], [EventType] and [ReservedEventType] accept exactly what the
//     CHECK constraints stream_name_rule, event_type_rule and
//     event_type_reserved_rule accept; TestRulesMatchDatabase runs the same
//     inputs through both and fails on any difference.
//   - Each rule's text ([StreamText], [EventTypeText], [ReservedText],
//     [DataSizeText]) is its constraint's COMMENT in the database, word for
//     word (tested likewise).
//   - The functions allocate nothing and read each byte once.
package rules
