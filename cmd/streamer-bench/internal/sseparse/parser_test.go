package sseparse

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParser(t *testing.T) {
	var events []string
	p := &Parser{Chunked: true, OnEvent: func(id, typ, data []byte) {
		events = append(events, string(id)+"|"+string(typ)+"|"+string(data))
	}}
	body := ": hi\nretry: 2000\n\nid: 1.1\ndata: a\n\nid: 2.2\r\nevent: e\rdata: b\ndata: c\n\n: ping\n"
	var chunked strings.Builder
	// Chunks of awkward sizes, so that lines and CRLFs straddle reads.
	for i := 0; i < len(body); i += 7 {
		part := body[i:min(i+7, len(body))]
		chunked.WriteString(strings.ToUpper(strconv.FormatInt(int64(len(part)), 16)) + ";ext=1\r\n" + part + "\r\n")
	}
	chunked.WriteString("0\r\n\r\n")
	wire := chunked.String()
	var err error
	for i := 0; i < len(wire) && err == nil; i += 3 {
		err = p.Feed([]byte(wire[i:min(i+3, len(wire))]))
	}
	require.ErrorIs(t, err, ErrEndOfBody)
	require.Equal(t, []string{"1.1||a", "2.2|e|b\nc"}, events)
}
