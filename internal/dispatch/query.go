package dispatch

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/streamer-dev/streamer/internal/cursor"
)

// event is one row of the delivery order as read from the database.
type event struct {
	pos    cursor.Position
	stream string
	typ    string // "" when the row's event is NULL
	data   string
}

// page is the result of one read.
type page struct {
	events []event
	// next is where the following read starts: after the last event when the
	// page was full, else after every commit visible to the read's snapshot.
	next cursor.Position
	full bool
}

// readQuery reads events after a position in delivery order, together with
// the highest commit visible in the same snapshot (one statement, one
// snapshot). Its plan is an index range scan of commits_pkey from $1 joined to
// events_txid_id_idx (checked in TestReadPlan).
const readQuery = `
WITH head AS (SELECT coalesce(max(seq), 0) AS seq FROM streamer.commits)
SELECT head.seq, p.seq, p.id, p.stream, p.event, p.data
FROM head LEFT JOIN LATERAL (
    SELECT c.seq, e.id, e.stream, e.event, e.data
    FROM streamer.commits c
    JOIN streamer.events e ON e.txid = c.txid
    WHERE c.seq >= $1 AND (c.seq > $1 OR e.id > $2)
    ORDER BY c.seq, e.id
    LIMIT $3
) p ON true`

// readStreamsQuery is readQuery restricted to some streams.
const readStreamsQuery = `
WITH head AS (SELECT coalesce(max(seq), 0) AS seq FROM streamer.commits)
SELECT head.seq, p.seq, p.id, p.stream, p.event, p.data
FROM head LEFT JOIN LATERAL (
    SELECT c.seq, e.id, e.stream, e.event, e.data
    FROM streamer.commits c
    JOIN streamer.events e ON e.txid = c.txid
    WHERE c.seq >= $1 AND (c.seq > $1 OR e.id > $2) AND e.stream = ANY($4::text[])
    ORDER BY c.seq, e.id
    LIMIT $3
) p ON true`

// headQuery returns the position after everything committed so far.
const headQuery = `SELECT coalesce(max(seq), 0) FROM streamer.commits`

// readPage reads up to limit events after from. When streams is nil every
// stream is read.
func readPage(ctx context.Context, pool *pgxpool.Pool, from cursor.Position, streams []string, limit int) (page, error) {
	var rows pgx.Rows
	var err error
	if streams == nil {
		rows, err = pool.Query(ctx, readQuery, from.Seq, from.ID, limit)
	} else {
		rows, err = pool.Query(ctx, readStreamsQuery, from.Seq, from.ID, limit, streams)
	}
	if err != nil {
		return page{}, fmt.Errorf("read events after %s: %w", from, err)
	}
	defer rows.Close()

	var (
		p    page
		head int64
	)
	for rows.Next() {
		var (
			seq, id     *int64
			stream, typ *string
			data        *string
		)
		if err := rows.Scan(&head, &seq, &id, &stream, &typ, &data); err != nil {
			return page{}, fmt.Errorf("scan event: %w", err)
		}
		if seq == nil { // LEFT JOIN with nothing after from
			continue
		}
		ev := event{pos: cursor.Position{Seq: *seq, ID: *id}, stream: *stream, data: *data}
		if typ != nil {
			ev.typ = *typ
		}
		p.events = append(p.events, ev)
	}
	if err := rows.Err(); err != nil {
		return page{}, fmt.Errorf("read events after %s: %w", from, err)
	}

	p.full = len(p.events) >= limit
	if p.full {
		p.next = p.events[len(p.events)-1].pos
		return p, nil
	}
	p.next = from
	if after := cursor.After(head); from.Less(after) {
		p.next = after
	}
	return p, nil
}

// readHead returns the position after everything committed so far.
func readHead(ctx context.Context, pool *pgxpool.Pool) (cursor.Position, error) {
	var seq int64
	if err := pool.QueryRow(ctx, headQuery).Scan(&seq); err != nil {
		return cursor.Position{}, fmt.Errorf("read head: %w", err)
	}
	return cursor.After(seq), nil
}
