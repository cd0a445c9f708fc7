// Package cursor defines positions in streamer's delivery order and the
// resume tokens that encode them.
//
// # Overview
//
// Every event has a [Position]: the commit sequence number of the
// transaction that inserted it (streamer.commits.seq: taken at COMMIT under a
// lock in the trigger ordering mode, so it follows commit order; by the tick
// that first saw the transaction committed in the ticks mode, so it follows
// commit order to the tick) and the event's own id (insertion order within
// that transaction). Tokens mean the same in both modes. Positions order events totally; the order is a
// function of what is in the database, so it is the same for every
// subscriber, every replay and every server process.
//
// A token is the text form of a position, sent in the SSE id field and
// returned by clients in Last-Event-ID. Two forms are accepted:
//
//	"<seq>.<id>"  after the event at (seq, id): the id of every event frame.
//	"<seq>"       after every event of commit seq: what streamer.head() returns.
//
// Both are decimal ASCII without spaces, at most 39 bytes. A later format must
// start with a letter so that these two stay parseable forever: a token issued
// by this version is accepted by every later one.
//
// # Invariants
//
//   - Parse(p.String()) == p for every valid position.
//   - A position means "resume after": events at positions strictly greater
//     than it are delivered.
package cursor
