package dispatch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/streamer-dev/streamer/internal/cursor"
)

// A read's rows are decoded from their wire bytes (pgx.Rows.RawValues)
// rather than through pgx.Rows.Scan: a read returns a handful of rows, and
// Scan planned a decoder for each of its 13 columns on every read and
// allocated a pointer per nullable column per row, which cost more than
// the rows themselves (~10% of the server's CPU in the streams benchmark).
// The columns are those of readQueryFormat, in its order.

// readRow is one row of a read, as decoded from it.
type readRow struct {
	horizon    cursor.Position // the prune horizon
	head       int64
	scanned    int
	lastCommit *int64 // nil: NULL (nothing scanned)
	ev         event
	hasEvent   bool // false: the LEFT JOIN found no event
}

// readColumns are the types readQueryFormat's columns must have, in order,
// for decodeRaw.
var readColumns = [...]uint32{
	pgtype.Int8OID, pgtype.Int8OID, // pruned seq, id
	pgtype.Int8OID, pgtype.Int8OID, pgtype.Int8OID, // head, scanned, last
	pgtype.Int8OID, pgtype.Int8OID, // seq, id
	pgtype.TextOID, pgtype.TextOID, pgtype.TextOID, // stream, event, data
	pgtype.TextArrayOID, pgtype.BoolOID, pgtype.TimestamptzOID, // audience, hidden, committed_at
}

// rawDecodable reports whether decodeRaw can decode rows with these
// fields: the expected types, each in binary format (text values are the
// same bytes in both formats).
func rawDecodable(fields []pgconn.FieldDescription) bool {
	if len(fields) != len(readColumns) {
		return false
	}
	for i, f := range fields {
		if f.DataTypeOID != readColumns[i] {
			return false
		}
		if f.Format != pgtype.BinaryFormatCode && f.DataTypeOID != pgtype.TextOID {
			return false
		}
	}
	return true
}

var errRowShape = errors.New("unexpected value")

// decodeRaw decodes one row's values (nil: NULL); rawDecodable must hold
// for their fields.
func (r *readRow) decodeRaw(vals [][]byte) error {
	if len(vals) != len(readColumns) {
		return fmt.Errorf("%d columns: %w", len(vals), errRowShape)
	}
	var err error
	int8At := func(i int) int64 {
		if len(vals[i]) != 8 {
			err = fmt.Errorf("column %d: %d bytes for an int8: %w", i, len(vals[i]), errRowShape)
			return 0
		}
		return int64(binary.BigEndian.Uint64(vals[i]))
	}
	r.horizon.Seq, r.horizon.ID = int8At(0), int8At(1)
	r.head = int8At(2)
	r.scanned = int(int8At(3))
	if vals[4] != nil {
		last := int8At(4)
		r.lastCommit = &last
	}
	if vals[5] == nil { // LEFT JOIN: no event after the cursor
		return err
	}
	r.hasEvent = true
	ev := &r.ev
	ev.pos.Seq, ev.pos.ID = int8At(5), int8At(6)
	ev.stream, ev.typ, ev.data = string(vals[7]), string(vals[8]), string(vals[9])
	if vals[10] != nil {
		if ev.audience, err = decodeTextArray(vals[10]); err != nil {
			return fmt.Errorf("column 10: %w", err)
		}
	}
	if b := vals[11]; b != nil {
		if len(b) != 1 {
			return fmt.Errorf("column 11: %d bytes for a bool: %w", len(b), errRowShape)
		}
		ev.hidden = b[0] != 0
	}
	if vals[12] != nil {
		ev.committed = pgEpoch.Add(time.Duration(int8At(12)) * time.Microsecond)
	}
	return err
}

// pgEpoch is the zero of PostgreSQL's binary timestamps.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// decodeTextArray decodes a one-dimensional text[] in binary format (or
// an empty one, which has no dimension), as pgx scans it into a []string:
// an empty array is an empty, non-nil slice; a NULL element is an error.
func decodeTextArray(b []byte) ([]string, error) {
	if len(b) < 12 {
		return nil, fmt.Errorf("array header: %w", errRowShape)
	}
	ndim := binary.BigEndian.Uint32(b)
	switch ndim {
	case 0:
		return []string{}, nil
	case 1:
	default:
		return nil, fmt.Errorf("%d-dimensional array: %w", ndim, errRowShape)
	}
	if len(b) < 20 {
		return nil, fmt.Errorf("array dimension: %w", errRowShape)
	}
	n := int(int32(binary.BigEndian.Uint32(b[12:])))
	if n < 0 || n > len(b) {
		return nil, fmt.Errorf("array length %d: %w", n, errRowShape)
	}
	out := make([]string, 0, n)
	b = b[20:]
	for range n {
		if len(b) < 4 {
			return nil, fmt.Errorf("array element: %w", errRowShape)
		}
		l := int32(binary.BigEndian.Uint32(b))
		b = b[4:]
		if l < 0 {
			return nil, fmt.Errorf("NULL array element: %w", errRowShape)
		}
		if int(l) > len(b) {
			return nil, fmt.Errorf("array element of %d bytes: %w", l, errRowShape)
		}
		out = append(out, string(b[:l]))
		b = b[l:]
	}
	return out, nil
}

// scanRow is decodeRaw through pgx.Rows.Scan, for rows that decodeRaw
// cannot take (rawDecodable is false).
func (r *readRow) scanRow(rows pgx.Rows) error {
	var (
		seq, id           *int64
		stream, typ, data *string
		aud               []string
		hidden            *bool
		committed         *time.Time
	)
	if err := rows.Scan(&r.horizon.Seq, &r.horizon.ID, &r.head, &r.scanned, &r.lastCommit, &seq, &id, &stream, &typ, &data, &aud, &hidden, &committed); err != nil {
		return err
	}
	if seq == nil {
		return nil
	}
	r.hasEvent = true
	r.ev = event{pos: cursor.Position{Seq: *seq, ID: *id}, stream: *stream, data: *data, audience: aud, hidden: hidden != nil && *hidden}
	if typ != nil {
		r.ev.typ = *typ
	}
	if committed != nil {
		r.ev.committed = *committed
	}
	return nil
}
