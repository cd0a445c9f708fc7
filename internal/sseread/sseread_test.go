package sseread

import (
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRead: fields, comments, CRLF, multi-line data, id-only blocks, and
// the last event ID carried over blocks without an id.
func TestRead(t *testing.T) {
	t.Parallel()
	stream := ": hello\r\n\r\n" +
		"id: 1\ndata: a\n\n" +
		"event: ping\ndata: b\ndata:c\n\n" +
		"id: 2\n\n" +
		"retry: 200\nfoo: bar\ndata: d\n\n" +
		"id:\ndata: e\n\n" +
		"data: unterminated\n"
	var got []Block
	err := Read(strings.NewReader(stream), "0", func(b Block) { got = append(got, b) })
	require.ErrorIs(t, err, io.EOF)
	require.Equal(t, []Block{
		{LastID: "0"},
		{ID: "1", HasID: true, LastID: "1", Data: "a", HasData: true},
		{LastID: "1", Type: "ping", Data: "b\nc", HasData: true},
		{ID: "2", HasID: true, LastID: "2"},
		{LastID: "2", Data: "d", HasData: true},
		{HasID: true, LastID: "", Data: "e", HasData: true},
	}, got)
}
