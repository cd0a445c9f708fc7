package dispatch

import (
	"context"
	"fmt"
	"time"

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
	// audience is the row's audience (nil: everybody) on a live read. A
	// replay read decides visibility in SQL instead: hidden is true, and
	// typ and data are empty, for an event its subscriber may not see.
	audience []string
	// audMask is audience's audienceMask, set by fanout (0: not set).
	audMask uint64
	hidden  bool
	// committed is the commit time the database recorded
	// (streamer.commits.committed_at), for the delivery lag.
	committed time.Time
}

// page is the result of one read.
type page struct {
	events []event
	// next is where the following read starts: after the last event when the
	// page was full, else after every commit visible to the read's snapshot.
	next cursor.Position
	full bool
	// horizon is the pruned horizon in the read's snapshot (see gap.go).
	horizon cursor.Position
}

// readQuery reads the events of up to $3 commits after a position, in
// delivery order, with the highest commit visible in the same snapshot and
// the last commit it scanned (one statement, one snapshot). Taking commits
// first bounds the work of one read however far behind the cursor is and
// however few of those commits touch the wanted streams. The plan is an index
// range scan of commits_pkey from $1 and, per commit, an index scan of
// events_txid_id_idx, under an incremental sort that stops as soon as $3
// events are out (checked in TestReadPlan); "scanned" counts the commits the
// page covers with an index-only scan. %s is empty or a stream filter on $4.
// The first two columns are the pruned horizon of the same snapshot (gap.go),
// read as InitPlans so that the plan of the rest does not change. The
// position test is a row comparison, (c.seq, e.id) > ($1, $2), the same as
// c.seq > $1 OR e.id > $2 on commits from $1, because the planner estimates
// "e.id > $2" (usually 0) by looking up the lowest id in events_pkey, which
// after a prune steps over every entry deleted since the last vacuum, at
// every read (TestReadPlanAfterPrune); a row comparison is estimated from its
// first column, c.seq, which is no column of the scanned table.
const readQueryFormat = `
WITH head AS (
    SELECT coalesce(max(seq), 0) AS seq FROM streamer.commits
), scanned AS (
    SELECT count(*) AS n, max(seq) AS last
    FROM (SELECT seq FROM streamer.commits WHERE seq >= $1 ORDER BY seq LIMIT $3) s
)
SELECT (SELECT seq FROM streamer.pruned), (SELECT id FROM streamer.pruned),
    head.seq, scanned.n, scanned.last, p.seq, p.id, p.stream, p.event, p.data, p.audience, p.hidden, p.committed_at
FROM head CROSS JOIN scanned LEFT JOIN LATERAL (
    SELECT c.seq, e.id, e.stream, e.event, e.data, e.audience, e.hidden, c.committed_at
    FROM (SELECT seq, txid, committed_at FROM streamer.commits WHERE seq >= $1 ORDER BY seq LIMIT $3) c
    JOIN LATERAL (
        SELECT e.id, e.stream, %s
        FROM streamer.events e
        WHERE e.txid = c.txid AND (c.seq, e.id) > ($1, $2)%s
        ORDER BY e.id
    ) e ON true
    ORDER BY c.seq, e.id
    LIMIT $3
) p ON true`

// liveColumns read the audience for the dispatcher to test per connection:
// one live read serves every connection, whatever its audience.
const liveColumns = "e.event, e.data, e.audience, false AS hidden"

// replayColumns test visibility in SQL against the replaying connection's
// keys, $K (an empty array for an anonymous connection, which then sees only
// rows whose audience is NULL: && with an empty array is false). A hidden
// row still comes back, as its position alone (no type, no data, no
// audience), so that pages are bounded exactly as for every other reader
// and the replay knows where the last hidden event was (see the package
// documentation, "Audience").
const replayColumnsFormat = `CASE WHEN e.audience IS NULL OR e.audience && $%[1]d::text[] THEN e.event END AS event,
               CASE WHEN e.audience IS NULL OR e.audience && $%[1]d::text[] THEN e.data ELSE '' END AS data,
               NULL::text[] AS audience,
               NOT (e.audience IS NULL OR e.audience && $%[1]d::text[]) AS hidden`

const streamFilter = " AND e.stream = ANY($4::text[])"

var (
	readQuery          = fmt.Sprintf(readQueryFormat, liveColumns, "")
	readStreamsQuery   = fmt.Sprintf(readQueryFormat, liveColumns, streamFilter)
	replayQuery        = fmt.Sprintf(readQueryFormat, fmt.Sprintf(replayColumnsFormat, 4), "")
	replayStreamsQuery = fmt.Sprintf(readQueryFormat, fmt.Sprintf(replayColumnsFormat, 5), streamFilter)
)

// headQuery returns the position after everything committed so far.
const headQuery = `SELECT coalesce(max(seq), 0) FROM streamer.commits`

// readPage reads up to limit events after from. When streams is nil every
// stream is read. aud nil reads every event with its audience (a live
// read); otherwise visibility is decided in SQL for a connection with the
// keys aud.keys (a replay), and hidden events come back as positions only.
func readPage(ctx context.Context, pool *pgxpool.Pool, from cursor.Position, streams []string, limit int, aud *audience) (page, error) {
	// "After all of commit s" is read as "from the start of commit s+1", so
	// that the commit limit is not spent on a commit already consumed.
	seq, id := from.Seq, from.ID
	if id == cursor.EndOfCommit {
		seq, id = seq+1, 0
	}
	var rows pgx.Rows
	var err error
	switch {
	case aud == nil && streams == nil:
		rows, err = pool.Query(ctx, readQuery, seq, id, limit)
	case aud == nil:
		rows, err = pool.Query(ctx, readStreamsQuery, seq, id, limit, streams)
	case streams == nil:
		rows, err = pool.Query(ctx, replayQuery, seq, id, limit, aud.sqlKeys())
	default:
		rows, err = pool.Query(ctx, replayStreamsQuery, seq, id, limit, streams, aud.sqlKeys())
	}
	if err != nil {
		return page{}, fmt.Errorf("read events after %s: %w", from, err)
	}
	defer rows.Close()

	var (
		p          page
		head       int64
		nScanned   int
		lastCommit *int64
		raw        = rawDecodable(rows.FieldDescriptions())
	)
	for rows.Next() {
		var r readRow
		var err error
		if raw {
			err = r.decodeRaw(rows.RawValues())
		} else {
			err = r.scanRow(rows)
		}
		if err != nil {
			return page{}, fmt.Errorf("scan event: %w", err)
		}
		p.horizon = r.horizon
		head, nScanned, lastCommit = r.head, r.scanned, r.lastCommit
		if r.hasEvent {
			p.events = append(p.events, r.ev)
		}
	}
	if err := rows.Err(); err != nil {
		return page{}, fmt.Errorf("read events after %s: %w", from, err)
	}

	switch {
	case len(p.events) >= limit: // more events may follow in the same commit
		p.full = true
		p.next = p.events[len(p.events)-1].pos
	case nScanned >= limit: // more commits may follow
		p.full = true
		p.next = cursor.After(*lastCommit)
	default: // caught up with the snapshot
		p.next = from
		if after := cursor.After(head); from.Less(after) {
			p.next = after
		}
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
