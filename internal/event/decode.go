package event

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Top-level keys of a published event, in the order of the JSON encoding.
// The first numStringFields are JSON strings; the rest are data and the
// reserved delivery-side keys.
const (
	fID = iota
	fType
	fSource
	fTimestamp
	fCorrelationID
	fTenantID
	fUserID
	fVersion
	fData
	fReplay
	fReplayOf
	fReplayID
	fTargetGroup
	numFields

	numStringFields = fData
	fUnknown        = -1
)

// fieldName returns the JSON name of field f.
func fieldName(f int) string {
	return [numFields]string{"id", "type", "source", "timestamp", "correlationId", "tenantId", "userId",
		"version", "data", "replay", "replayOf", "replayId", "targetGroup"}[f]
}

// lookupField returns the index of the top-level key, or fUnknown. Keys are
// case-sensitive, as in every other JSON consumer of the platform.
func lookupField(key []byte) int {
	switch string(key) { // no allocation: the compiler compares in place
	case "id":
		return fID
	case "type":
		return fType
	case "source":
		return fSource
	case "timestamp":
		return fTimestamp
	case "correlationId":
		return fCorrelationID
	case "tenantId":
		return fTenantID
	case "userId":
		return fUserID
	case "version":
		return fVersion
	case "data":
		return fData
	case "replay":
		return fReplay
	case "replayOf":
		return fReplayOf
	case "replayId":
		return fReplayID
	case "targetGroup":
		return fTargetGroup
	}
	return fUnknown
}

// stringField returns the Event field that holds string field f.
func (e *Event) stringField(f int) *string {
	return [numStringFields]*string{&e.ID, &e.Type, &e.Source, &e.Timestamp, &e.CorrelationID,
		&e.TenantID, &e.UserID, &e.Version}[f]
}

// span is the raw content of a JSON string or value in the body; the zero
// span means the field is absent.
type span struct {
	start, end int
	esc        bool // the string contains escapes and must be unescaped
}

// Decode parses a published event body: exactly one JSON object (whitespace
// around it allowed) whose keys are event fields. String fields must be JSON
// strings; null or "" leaves a field absent for Fill. data must be a JSON
// object or null and is kept byte for byte. The error is always an *Error:
// invalid_json for malformed JSON, which takes precedence over unknown_field,
// reserved_field and invalid_field (wrong type or duplicated key).
//
// Decode keeps no reference to body. On success it allocates the Event, one
// string backing all string fields and a copy of data.
func Decode(body []byte) (*Event, error) {
	if !utf8.Valid(body) {
		return nil, &Error{Code: CodeInvalidJSON, Message: "body is not valid JSON: it is not valid UTF-8"}
	}
	var (
		s       = scanner{b: body}
		strs    [numStringFields]span
		data    span
		seen    uint32
		invalid *Error // first error that is not a syntax error; reported only if the syntax is valid
	)
	setInvalid := func(code string, f int, key []byte, format string, args ...any) {
		if invalid == nil {
			name := truncateBytes(key)
			switch {
			case f != fUnknown:
				name = fieldName(f)
			case name == "":
				name = `""` // Field is empty only for invalid_json on the whole body
			}
			invalid = &Error{Code: code, Field: name, Message: fmt.Sprintf(format, args...)}
		}
	}

	o := object{notObject: "the body must be a JSON object", thing: "field", what: "the event object"}
	for key, ok := s.nextMember(&o); ok; key, ok = s.nextMember(&o) {
		f := lookupField(key)
		if f != fUnknown {
			s.field = fieldName(f)
		}
		switch c := s.peek(); {
		case f == fUnknown:
			setInvalid(CodeUnknownField, f, key, "unknown field %s%s; the fields of an event are "+
				"id, type, source, timestamp, correlationId, tenantId, userId, version and data",
				quote(string(key)), didYouMean(key))
			s.value(1)
		case seen&(1<<f) != 0:
			setInvalid(CodeInvalidField, f, key, "field %q appears more than once", fieldName(f))
			s.value(1)
		case f > fData:
			setInvalid(CodeReservedField, f, key, "field %q is set only by the sidecar on replay "+
				"and may not be published", fieldName(f))
			s.value(1)
		case c == 'n':
			s.literal("null")
		case f == fData && c == '{':
			start := s.i
			if s.value(1) {
				data = span{start: start, end: s.i}
			}
		case f == fData:
			setInvalid(CodeInvalidField, f, key, "data must be a JSON object, not %s", kind(c))
			s.value(1)
		case c == '"':
			if start, end, esc, ok := s.str(); ok {
				strs[f] = span{start: start, end: end, esc: esc}
			}
		default:
			setInvalid(CodeInvalidField, f, key, "%s must be a string, not %s", fieldName(f), kind(c))
			s.value(1)
		}
		if f != fUnknown {
			seen |= 1 << f
		}
	}
	if s.err != "" {
		return nil, s.bodyError()
	}
	if invalid != nil {
		return nil, invalid
	}

	e := &Event{}
	// All string fields share one allocation; unescaping never grows a string.
	total := 0
	for _, sp := range strs {
		total += sp.end - sp.start
	}
	if total > 0 {
		var sb strings.Builder
		sb.Grow(total)
		var ends [numStringFields]int
		for f, sp := range strs {
			if sp.esc {
				writeUnescaped(&sb, body[sp.start:sp.end])
			} else {
				sb.Write(body[sp.start:sp.end])
			}
			ends[f] = sb.Len()
		}
		all, start := sb.String(), 0
		for f, end := range ends {
			*e.stringField(f) = all[start:end]
			start = end
		}
	}
	if data.end > data.start {
		e.Data = make([]byte, data.end-data.start)
		copy(e.Data, body[data.start:data.end])
	}
	return e, nil
}

// didYouMean suggests the event field that key differs from only in case,
// the usual typo ("tenantID").
func didYouMean(key []byte) string {
	for f := range numFields {
		if bytes.EqualFold(key, []byte(fieldName(f))) {
			return fmt.Sprintf(" (did you mean %q?)", fieldName(f))
		}
	}
	return ""
}

// kind names the JSON type of a value starting with c, for messages.
func kind(c byte) string {
	switch c {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case 0:
		return "empty"
	}
	return "a number"
}

// checkDataObject reports, as an invalid_field *Error for "data", whether b
// is exactly one JSON object in valid UTF-8.
func checkDataObject(b []byte) error {
	s := scanner{b: b}
	s.ws()
	switch {
	case !utf8.Valid(b):
		s.err = "it is not valid UTF-8"
	case s.peek() != '{':
		s.err = "it is " + kind(s.peek())
	case s.value(1):
		s.ws()
		if s.i < len(b) {
			s.fail("unexpected data after the object")
		}
	}
	if s.err == "" {
		return nil
	}
	return &Error{Code: CodeInvalidField, Field: "data", Message: "data must be a JSON object: " + s.err}
}

// maxDepth bounds the nesting of arrays and objects, as encoding/json does,
// so that a hostile body cannot exhaust the stack.
const maxDepth = 10000

// scanner is a JSON syntax checker over one byte slice (RFC 8259). It never
// allocates until it fails; the first failure stops it.
type scanner struct {
	b     []byte
	i     int    // next byte to read
	err   string // first syntax error with its position, "" while none
	field string // top-level field whose value is being scanned, for errors
}

// object is a JSON object that must make up the whole of a scanner's
// input, as nextMember walks it: notObject is the error when the input is
// not an object, thing names its members ("field") and what the object
// itself ("the event object").
type object struct {
	notObject, thing, what string
	started                bool
}

// nextMember moves to o's next member: it reads the quoted name (unescaped
// if need be), the ':' and the space around them, and returns the name with
// s at the value, which the caller reads (setting s.field to name the member
// in errors; nextMember clears it). It returns false after the closing '}'
// (having checked that nothing follows) or at the first syntax error, in
// s.err. Written as a loop:
//
//	o := object{…}
//	for key, ok := s.nextMember(&o); ok; key, ok = s.nextMember(&o) { … }
func (s *scanner) nextMember(o *object) ([]byte, bool) {
	if !o.started {
		o.started = true
		s.ws()
		if !s.expect('{', o.notObject) {
			return nil, false
		}
		s.ws()
		if s.peek() == '}' {
			s.i++
			return nil, s.end(o)
		}
	} else {
		if s.err != "" {
			return nil, false
		}
		s.field = ""
		s.ws()
		switch s.peek() {
		case ',':
			s.i++
			s.ws()
		case '}':
			s.i++
			return nil, s.end(o)
		default:
			return nil, s.fail("expected ',' or '}' after " + article(o.thing) + " value")
		}
	}
	s.field = ""
	if s.peek() != '"' {
		return nil, s.fail("expected a quoted " + o.thing + " name")
	}
	ks, ke, kesc, ok := s.str()
	if !ok {
		return nil, false
	}
	key := s.b[ks:ke]
	if kesc {
		key = []byte(unescape(key))
	}
	s.ws()
	if s.peek() != ':' { // the message is built only on failure: this runs per member
		return nil, s.fail("expected ':' after " + article(o.thing) + " name")
	}
	s.i++
	s.ws()
	return key, true
}

// end checks that nothing but space follows o's closing '}'; it returns
// false (the walk is over either way).
func (s *scanner) end(o *object) bool {
	s.ws()
	if s.i < len(s.b) {
		s.fail("unexpected data after " + o.what)
	}
	return false
}

// article is thing with "a" or "an" before it.
func article(thing string) string {
	if strings.ContainsRune("aeiou", rune(thing[0])) {
		return "an " + thing
	}
	return "a " + thing
}

// fail records msg at the current position and returns false.
func (s *scanner) fail(msg string) bool {
	if s.err == "" {
		s.err = fmt.Sprintf("%s at byte %d", msg, s.i)
	}
	return false
}

// bodyError returns the recorded syntax error as an invalid_json *Error.
func (s *scanner) bodyError() *Error {
	return &Error{Code: CodeInvalidJSON, Field: s.field, Message: "body is not valid JSON: " + s.err}
}

// peek returns the next byte, or 0 at the end of input.
func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) expect(c byte, msg string) bool {
	if s.peek() != c {
		return s.fail(msg)
	}
	s.i++
	return true
}

// value scans one JSON value at nesting depth depth.
func (s *scanner) value(depth int) bool {
	switch c := s.peek(); c {
	case '{', '[':
		return s.container(depth + 1)
	case '"':
		_, _, _, ok := s.str()
		return ok
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	case 0:
		if s.i >= len(s.b) {
			return s.fail("unexpected end of input")
		}
	}
	if c := s.peek(); c == '-' || '0' <= c && c <= '9' {
		return s.number()
	}
	return s.fail("expected a JSON value")
}

// container scans an object or an array.
func (s *scanner) container(depth int) bool {
	if depth > maxDepth {
		return s.fail("nesting too deep")
	}
	closing := byte(']')
	if s.b[s.i] == '{' {
		closing = '}'
	}
	s.i++
	s.ws()
	if s.peek() == closing {
		s.i++
		return true
	}
	for {
		if closing == '}' {
			if s.peek() != '"' {
				return s.fail("expected a quoted key")
			}
			if _, _, _, ok := s.str(); !ok {
				return false
			}
			s.ws()
			if !s.expect(':', "expected ':' after a key") {
				return false
			}
			s.ws()
		}
		if !s.value(depth) {
			return false
		}
		s.ws()
		switch s.peek() {
		case ',':
			s.i++
			s.ws()
		case closing:
			s.i++
			return true
		default:
			return s.fail("expected ',' or '" + string(closing) + "'")
		}
	}
}

// str scans a string starting at its opening quote and returns the bounds of
// its raw content and whether it contains escapes. Input is valid UTF-8, so
// only escapes and control characters need checking.
func (s *scanner) str() (start, end int, esc, ok bool) {
	b := s.b
	start = s.i + 1
	for i := start; i < len(b); {
		c := b[i]
		switch {
		case c == '"':
			s.i = i + 1
			return start, i, esc, true
		case c == '\\':
			esc = true
			s.i = i
			var next byte
			if i+1 < len(b) {
				next = b[i+1]
			}
			switch next {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex4(b[i+2:i+6]) {
					return 0, 0, false, s.fail(`invalid \u escape in string`)
				}
				i += 6
			default:
				return 0, 0, false, s.fail("invalid escape in string")
			}
		case c < 0x20:
			s.i = i
			return 0, 0, false, s.fail("control character in string (escape it)")
		default:
			i++
		}
	}
	s.i = len(b)
	return 0, 0, false, s.fail("unterminated string")
}

func (s *scanner) literal(lit string) bool {
	if !bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
		return s.fail("invalid literal (expected " + lit + ")")
	}
	s.i += len(lit)
	return true
}

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() bool {
	b, i := s.b, s.i
	digits := func() bool {
		n := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		return i > n
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case !digits():
		s.i = i
		return s.fail("invalid number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			s.i = i
			return s.fail("invalid number: digits expected after '.'")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			s.i = i
			return s.fail("invalid number: digits expected in exponent")
		}
	}
	s.i = i
	return true
}

func isHex4(b []byte) bool {
	for _, c := range b[:4] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c <= '9':
			c -= '0'
		case c <= 'F':
			c -= 'A' - 10
		default:
			c -= 'a' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// unescape returns the content of a scanned string with escapes decoded.
func unescape(raw []byte) string {
	var sb strings.Builder
	sb.Grow(len(raw))
	writeUnescaped(&sb, raw)
	return sb.String()
}

// writeUnescaped decodes the raw content of a string that str accepted.
// Like encoding/json, a \u escape of a lone or mismatched UTF-16 surrogate
// becomes U+FFFD.
func writeUnescaped(w *strings.Builder, raw []byte) {
	for len(raw) > 0 {
		j := bytes.IndexByte(raw, '\\')
		if j < 0 {
			w.Write(raw)
			return
		}
		w.Write(raw[:j])
		c := raw[j+1]
		raw = raw[j+2:]
		switch c {
		case 'b':
			w.WriteByte('\b')
		case 'f':
			w.WriteByte('\f')
		case 'n':
			w.WriteByte('\n')
		case 'r':
			w.WriteByte('\r')
		case 't':
			w.WriteByte('\t')
		case 'u':
			r := hex4(raw)
			raw = raw[4:]
			if utf16.IsSurrogate(r) {
				if len(raw) >= 6 && raw[0] == '\\' && raw[1] == 'u' {
					if pair := utf16.DecodeRune(r, hex4(raw[2:])); pair != utf8.RuneError {
						w.WriteRune(pair)
						raw = raw[6:]
						continue
					}
				}
				r = utf8.RuneError
			}
			w.WriteRune(r)
		default: // '"', '\\', '/'
			w.WriteByte(c)
		}
	}
}
