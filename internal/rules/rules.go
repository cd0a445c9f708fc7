package rules

// The bounds of the rules.
const (
	// MaxStreamLen is the longest stream name, in characters (all ASCII).
	MaxStreamLen = 200
	// MaxEventTypeLen is the longest event type, in characters (all ASCII).
	MaxEventTypeLen = 64
	// ReservedPrefix begins the event types only the server may send.
	ReservedPrefix = "streamer."
	// MaxDataBytes is the largest data, in bytes.
	MaxDataBytes = 1 << 20
)

// What each rule requires, as a person reads it: the text of its CHECK
// constraint's comment. StreamChars is StreamText without its subject, for
// messages that name it already.
const (
	StreamChars   = "1-200 characters from A-Z a-z 0-9 _ . : / @ = + -, starting with a letter or digit"
	StreamText    = "stream name: " + StreamChars
	EventTypeText = "event type: NULL, or 1-64 characters from A-Z a-z 0-9 _ . : -"
	ReservedText  = `event types starting with "streamer." are reserved for the server`
	DataSizeText  = "data: at most 1 MiB (1,048,576 bytes)"
)

var streamByte, typeByte [256]bool

func init() {
	for c := 0; c < 256; c++ {
		alnum := 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
		streamByte[c] = alnum || c == '_' || c == '.' || c == ':' || c == '/' || c == '@' || c == '=' || c == '+' || c == '-'
		typeByte[c] = alnum || c == '_' || c == '.' || c == ':' || c == '-'
	}
}

// Stream reports whether s is a valid stream name (stream_name_rule).
func Stream(s string) bool {
	if len(s) == 0 || len(s) > MaxStreamLen {
		return false
	}
	c := s[0]
	if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9') {
		return false
	}
	return allOf(s, &streamByte)
}

// EventType reports whether s is an event type's text by event_type_rule:
// 1-64 allowed characters. It does not say whether s is reserved (see
// [ReservedEventType]); a NULL type is not a string and always valid.
func EventType(s string) bool {
	return len(s) > 0 && len(s) <= MaxEventTypeLen && allOf(s, &typeByte)
}

// ReservedEventType reports whether s is reserved for the server
// (event_type_reserved_rule refuses it).
func ReservedEventType(s string) bool {
	return len(s) >= len(ReservedPrefix) && s[:len(ReservedPrefix)] == ReservedPrefix
}

func allOf(s string, set *[256]bool) bool {
	for i := 0; i < len(s); i++ {
		if !set[s[i]] {
			return false
		}
	}
	return true
}
