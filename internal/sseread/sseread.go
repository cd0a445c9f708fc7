package sseread

import (
	"bufio"
	"io"
	"strings"
)

// Block is what the lines up to a blank one set.
type Block struct {
	ID     string // the block's own id field, "" when none
	HasID  bool   // whether the block has an id field
	LastID string // EventSource's last event ID after this block
	Type   string // the event field, "" when none (a "message")
	Data   string // the data lines, joined with "\n"
	// HasData is whether the block has a data line: EventSource
	// dispatches an event for it only then.
	HasData bool
}

// Read parses r, starting from the last event ID lastID ("" for none),
// and calls fn for each block that a blank line ends, until r fails. It
// returns r's error: io.EOF when the stream ended.
func Read(r io.Reader, lastID string, fn func(Block)) error {
	br := bufio.NewReader(r)
	var (
		b    Block
		data []string
	)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			if b.HasID {
				lastID = b.ID
			}
			b.LastID, b.Data = lastID, strings.Join(data, "\n")
			fn(b)
			b, data = Block{}, nil
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			b.ID, b.HasID = value, true
		case "event":
			b.Type = value
		case "data":
			data = append(data, value)
			b.HasData = true
		}
	}
}
