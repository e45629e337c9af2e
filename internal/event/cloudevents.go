package event

import (
	"bytes"
	"fmt"
	"mime"
	"slices"
	"unicode/utf8"
)

// CloudEvents 1.0 (SPEC §1): a published CloudEvent maps onto the same Event
// as a native body, and a push can be a structured CloudEvent.
//
//	CloudEvents attribute   Event field     rule
//	specversion             —               required, "1.0"
//	id, source, type        ID, Source, Type  required (non-empty strings)
//	time                    Timestamp       optional; Fill sets it when absent
//	datacontenttype         —               optional; application/json (parameters allowed)
//	data                    Data            a JSON object; absent or null means {}
//	tenantid                TenantID        extension; Fill falls back to X-Tenant-Id, --tenant
//	correlationid           CorrelationID   extension
//	userid                  UserID          extension
//	hyvveversion            Version         extension
//
// Other attributes (subject, dataschema) and unknown extensions are ignored,
// as CloudEvents allows arbitrary extensions; but an attribute name must be
// lower-case letters and digits, so "tenantId" is an unknown_field error
// instead of a tenant silently ignored. data_base64 is rejected (data must be
// a JSON object). The delivery-side extensions hyvvereplay, hyvvereplayof,
// hyvvereplayid and hyvvetargetgroup are reserved_field, as their native
// counterparts are.
const (
	CloudEventsSpecVersion = "1.0"
	// CloudEventsMediaType is the Content-Type of a structured CloudEvent.
	CloudEventsMediaType = "application/cloudevents+json"
	// CloudEventsHeaderPrefix starts the header of each attribute in binary mode.
	CloudEventsHeaderPrefix = "ce-"
)

// Context attributes that map onto the event, and the data members.
const (
	ceSpecVersion = iota
	ceID
	ceSource
	ceType
	ceTime
	ceDataContentType
	ceTenantID
	ceCorrelationID
	ceUserID
	ceVersion
	numCEStrings // attributes above are JSON strings

	ceData = iota - 1
	ceDataBase64
	ceReplay
	ceReplayOf
	ceReplayID
	ceTargetGroup
	numCEAttrs

	ceUnknown = -1
)

// ceName returns the CloudEvents name of attribute a.
func ceName(a int) string {
	return [numCEAttrs]string{"specversion", "id", "source", "type", "time", "datacontenttype", "tenantid",
		"correlationid", "userid", "hyvveversion", "data", "data_base64", "hyvvereplay", "hyvvereplayof",
		"hyvvereplayid", "hyvvetargetgroup"}[a]
}

// lookupCE returns the index of attribute name, or ceUnknown.
func lookupCE(name []byte) int {
	switch string(name) {
	case "specversion":
		return ceSpecVersion
	case "id":
		return ceID
	case "source":
		return ceSource
	case "type":
		return ceType
	case "time":
		return ceTime
	case "datacontenttype":
		return ceDataContentType
	case "tenantid":
		return ceTenantID
	case "correlationid":
		return ceCorrelationID
	case "userid":
		return ceUserID
	case "hyvveversion":
		return ceVersion
	case "data":
		return ceData
	case "data_base64":
		return ceDataBase64
	case "hyvvereplay":
		return ceReplay
	case "hyvvereplayof":
		return ceReplayOf
	case "hyvvereplayid":
		return ceReplayID
	case "hyvvetargetgroup":
		return ceTargetGroup
	}
	return ceUnknown
}

// ceField returns the Event field that holds string attribute a, or nil for
// specversion and datacontenttype, which only are checked.
func (e *Event) ceField(a int) *string {
	return [numCEStrings]*string{nil, &e.ID, &e.Source, &e.Type, &e.Timestamp, nil, &e.TenantID,
		&e.CorrelationID, &e.UserID, &e.Version}[a]
}

// CloudEventAttribute returns the CloudEvents attribute that carries the
// event field named field ("timestamp" → "time", "tenantId" → "tenantid"),
// or field itself when it has no attribute of its own. The local API uses it
// to name, in errors of Validate on an event from DecodeCloudEvent or
// DecodeCloudEventBinary, what the publisher actually sent.
func CloudEventAttribute(field string) string {
	switch field {
	case "timestamp":
		return "time"
	case "tenantId":
		return "tenantid"
	case "correlationId":
		return "correlationid"
	case "userId":
		return "userid"
	case "version":
		return "hyvveversion"
	}
	return field
}

// DecodeCloudEvent parses a structured-mode CloudEvent (Content-Type
// application/cloudevents+json): one JSON object whose members are context
// attributes and data, mapped as the table above says. It keeps no reference
// to body. A string attribute
// that is null or "" counts as absent. The error is always an *Error whose
// Field names the CloudEvents attribute, checked in this order: invalid_json
// (malformed JSON), specversion (missing_field or invalid_field),
// datacontenttype, then the first bad member in document order
// (invalid_field for a wrong type, a duplicate, data_base64 or data that is
// not an object; unknown_field for a name that is not a CloudEvents
// attribute name; reserved_field), then a missing id, source or type.
//
// The event still needs Fill and Validate. DecodeCloudEvent keeps no
// reference to body; it is safe for concurrent use.
func DecodeCloudEvent(body []byte) (*Event, error) {
	if !utf8.Valid(body) {
		return nil, &Error{Code: CodeInvalidJSON, Message: "body is not valid JSON: it is not valid UTF-8"}
	}
	var (
		s       = scanner{b: body}
		spans   [numCEAttrs]span
		seen    uint32
		invalid *Error // first member error in document order
		specErr *Error // error of the specversion member, reported first
	)
	setInvalid := func(code, field, format string, args ...any) {
		err := &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
		if field == "specversion" && specErr == nil {
			specErr = err
		}
		if invalid == nil {
			invalid = err
		}
	}
	o := object{notObject: "a structured CloudEvent must be a JSON object", thing: "attribute", what: "the CloudEvent object"}
	for key, ok := s.nextMember(&o); ok; key, ok = s.nextMember(&o) {
		a := lookupCE(key)
		if a != ceUnknown {
			s.field = ceName(a)
		}
		switch c := s.peek(); {
		case a == ceUnknown:
			if !isCEName(key) {
				name := truncateBytes(key)
				if name == "" {
					name = `""` // Field is empty only for invalid_json on the whole body
				}
				setInvalid(CodeUnknownField, name, "%s is not a CloudEvents attribute name "+
					"(lower-case letters and digits only)%s", quote(string(key)), ceDidYouMean(key))
			}
			s.value(1) // an extension the sidecar does not use
		case seen&(1<<a) != 0:
			setInvalid(CodeInvalidField, ceName(a), "attribute %q appears more than once", ceName(a))
			s.value(1)
		case a >= ceReplay:
			setInvalid(CodeReservedField, ceName(a), "extension %q is set only by the sidecar on replay "+
				"and may not be published", ceName(a))
			s.value(1)
		case c == 'n':
			s.literal("null")
		case a == ceDataBase64:
			setInvalid(CodeInvalidField, ceName(a), "data_base64 is not supported: data must be a JSON object "+
				"with datacontenttype application/json")
			s.value(1)
		case a == ceData && c == '{':
			start := s.i
			if s.value(1) {
				spans[a] = span{start: start, end: s.i}
			}
		case a == ceData:
			setInvalid(CodeInvalidField, ceName(a), "data must be a JSON object, not %s", kind(c))
			s.value(1)
		case c == '"':
			if start, end, esc, ok := s.str(); ok {
				spans[a] = span{start: start, end: end, esc: esc}
			}
		default:
			setInvalid(CodeInvalidField, ceName(a), "%s must be a string, not %s", ceName(a), kind(c))
			s.value(1)
		}
		if a != ceUnknown {
			seen |= 1 << a
		}
	}
	if s.err != "" {
		return nil, s.bodyError()
	}

	var vals [numCEStrings]string
	for a := range numCEStrings {
		if sp := spans[a]; sp.esc {
			vals[a] = unescape(body[sp.start:sp.end])
		} else if sp.end > sp.start {
			vals[a] = string(body[sp.start:sp.end])
		}
	}
	if specErr != nil {
		return nil, specErr
	}
	e, err := ceEvent(&vals, "")
	if err != nil {
		return nil, err
	}
	if invalid != nil {
		return nil, invalid
	}
	if err := ceRequire(&vals, ""); err != nil {
		return nil, err
	}
	if sp := spans[ceData]; sp.end > sp.start {
		e.Data = slices.Clone(body[sp.start:sp.end])
	}
	return e, nil
}

// DecodeCloudEventBinary parses a binary-mode CloudEvent: each attribute is
// the header ce-<name> (header is called with lower-case names such as
// "ce-specversion" and must match case-insensitively, as fasthttp's Peek
// and net/http's Get do; it returns "" for an absent header), datacontenttype
// is header("Content-Type") and body is data: a JSON object, or empty for {}.
// Header values are percent-decoded as the CloudEvents HTTP binding requires
// ("%" not followed by two hex digits stays as it is). Errors and their order
// are those of DecodeCloudEvent, with Field naming the attribute without its
// "ce-" prefix (or "data"). Unknown ce-* headers are ignored.
//
// DecodeCloudEventBinary keeps no reference to body or to the header values.
func DecodeCloudEventBinary(header func(name string) string, body []byte) (*Event, error) {
	var vals [numCEStrings]string
	for a := range numCEStrings {
		name := CloudEventsHeaderPrefix + ceName(a)
		if a == ceDataContentType {
			name = "Content-Type"
		}
		v, ok := header(name), true
		if a != ceDataContentType { // Content-Type is not percent-encoded
			v, ok = percentDecode(v)
		}
		if !ok {
			return nil, &Error{Code: CodeInvalidField, Field: ceName(a),
				Message: fmt.Sprintf("header %s is not valid UTF-8 after percent-decoding", name)}
		}
		vals[a] = v
	}
	e, err := ceEvent(&vals, "header ")
	if err != nil {
		return nil, err
	}
	for a := ceReplay; a < numCEAttrs; a++ {
		if header(CloudEventsHeaderPrefix+ceName(a)) != "" {
			return nil, &Error{Code: CodeReservedField, Field: ceName(a), Message: fmt.Sprintf(
				"header %s%s is set only by the sidecar on replay and may not be published", CloudEventsHeaderPrefix, ceName(a))}
		}
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := checkDataObject(body); err != nil {
			return nil, err
		}
		e.Data = slices.Clone(body)
	}
	if err := ceRequire(&vals, "header "); err != nil {
		return nil, err
	}
	return e, nil
}

// ceEvent checks specversion and datacontenttype and returns the event of the
// string attributes. where is "" or "header " for messages.
func ceEvent(vals *[numCEStrings]string, where string) (*Event, error) {
	prefix := ""
	if where != "" {
		prefix = CloudEventsHeaderPrefix
	}
	switch v := vals[ceSpecVersion]; v {
	case CloudEventsSpecVersion:
	case "":
		return nil, &Error{Code: CodeMissingField, Field: "specversion", Message: fmt.Sprintf(
			"%s%sspecversion is required: a CloudEvent must give specversion %q", where, prefix, CloudEventsSpecVersion)}
	default:
		return nil, &Error{Code: CodeInvalidField, Field: "specversion", Message: fmt.Sprintf(
			"%s%sspecversion %s is not supported: only CloudEvents %q is", where, prefix, quote(v), CloudEventsSpecVersion)}
	}
	if ct := vals[ceDataContentType]; ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			name := "datacontenttype"
			if where != "" {
				name = "Content-Type"
			}
			return nil, &Error{Code: CodeInvalidField, Field: "datacontenttype", Message: fmt.Sprintf(
				"%s%s %s is not supported: data must be a JSON object sent as application/json", where, name, quote(ct))}
		}
	}
	e := &Event{}
	for a := range numCEStrings {
		if f := e.ceField(a); f != nil {
			*f = vals[a]
		}
	}
	return e, nil
}

// ceRequire reports the first of id, source and type that is absent.
func ceRequire(vals *[numCEStrings]string, where string) error {
	prefix := ""
	if where != "" {
		prefix = CloudEventsHeaderPrefix
	}
	for _, a := range [...]int{ceID, ceSource, ceType} {
		if vals[a] == "" {
			return &Error{Code: CodeMissingField, Field: ceName(a), Message: fmt.Sprintf(
				"%s%s%s is required in a CloudEvent", where, prefix, ceName(a))}
		}
	}
	return nil
}

// isCEName reports whether name is a valid CloudEvents attribute name:
// lower-case ASCII letters and digits.
func isCEName(name []byte) bool {
	if len(name) == 0 {
		return false
	}
	for _, c := range name {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// ceDidYouMean suggests the mapped attribute that name differs from only in
// case, the usual mistake ("tenantId" for "tenantid").
func ceDidYouMean(name []byte) string {
	for a := range numCEAttrs {
		if bytes.EqualFold(name, []byte(ceName(a))) {
			return fmt.Sprintf(" (did you mean %q?)", ceName(a))
		}
	}
	return ""
}

// percentDecode decodes %XX sequences (CloudEvents HTTP binding, 3.1.3.2)
// and reports whether the result is valid UTF-8.
func percentDecode(s string) (string, bool) {
	i := 0
	for i < len(s) && !(s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2])) {
		i++
	}
	if i == len(s) {
		return s, utf8.ValidString(s)
	}
	b := make([]byte, 0, len(s))
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return string(b), utf8.Valid(b)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// AppendCloudEvent appends the event as a structured CloudEvent 1.0, the
// push body of --push-format cloudevents (Content-Type
// CloudEventsMediaType): specversion "1.0", id, source, type, time (when
// set), datacontenttype "application/json", the extensions tenantid,
// correlationid, userid and hyvveversion (each when set), the delivery-side
// extensions hyvvereplay (true), hyvvereplayof, hyvvereplayid and
// hyvvetargetgroup (only when set), then data ({} when empty). id, source
// and type are written even when empty; events the sidecar filled always
// have them. Strings are escaped as by AppendJSON; the trace context is not
// included (it travels in headers).
func (e *Event) AppendCloudEvent(dst []byte) []byte {
	n := 260 + len(e.ID) + len(e.Type) + len(e.Source) + len(e.Timestamp) + len(e.CorrelationID) +
		len(e.TenantID) + len(e.UserID) + len(e.Version) + len(e.Data) + len(e.ReplayOf) +
		len(e.ReplayID) + len(e.TargetGroup)
	dst = slices.Grow(dst, n)
	dst = append(dst, `{"specversion":"1.0","id":`...)
	dst = AppendJSONString(dst, e.ID)
	dst = append(dst, `,"source":`...)
	dst = AppendJSONString(dst, e.Source)
	dst = append(dst, `,"type":`...)
	dst = AppendJSONString(dst, e.Type)
	if e.Timestamp != "" {
		dst = append(dst, `,"time":`...)
		dst = AppendJSONString(dst, e.Timestamp)
	}
	dst = append(dst, `,"datacontenttype":"application/json"`...)
	for _, kv := range [...]struct{ k, v string }{
		{`,"tenantid":`, e.TenantID},
		{`,"correlationid":`, e.CorrelationID},
		{`,"userid":`, e.UserID},
		{`,"hyvveversion":`, e.Version},
	} {
		if kv.v != "" {
			dst = append(dst, kv.k...)
			dst = AppendJSONString(dst, kv.v)
		}
	}
	if e.Replay {
		dst = append(dst, `,"hyvvereplay":true`...)
	}
	for _, kv := range [...]struct{ k, v string }{
		{`,"hyvvereplayof":`, e.ReplayOf},
		{`,"hyvvereplayid":`, e.ReplayID},
		{`,"hyvvetargetgroup":`, e.TargetGroup},
	} {
		if kv.v != "" {
			dst = append(dst, kv.k...)
			dst = AppendJSONString(dst, kv.v)
		}
	}
	dst = append(dst, `,"data":`...)
	if len(e.Data) == 0 {
		dst = append(dst, "{}"...)
	} else {
		dst = append(dst, e.Data...)
	}
	return append(dst, '}')
}
