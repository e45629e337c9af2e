package event

import (
	"fmt"
	"time"
)

// Limits of SPEC §1 and of this package. Several fields become HTTP headers
// and parts of Redis keys, so each is bounded and restricted to printable
// ASCII.
const (
	MaxIDLen            = 128
	MaxTypeLen          = 128
	MaxSourceLen        = 128
	MaxCorrelationIDLen = 128
	MaxUserIDLen        = 256
	MaxVersionLen       = 32
	MaxTenantIDLen      = 64
	MinTypeSegments     = 2
	MaxTypeSegments     = 5
)

// TenantIDPattern is the rule ValidateTenantID enforces, for messages and docs.
const TenantIDPattern = `^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`

// Validate checks every rule of SPEC §1 and returns an *Error naming the
// first bad field, in the order of the JSON encoding. It expects a filled
// event (see Fill): an empty id, type, timestamp, tenantId, correlationId,
// userId or version is missing_field; source may be empty (no --source);
// empty Data is treated as {}.
func (e *Event) Validate() error {
	if err := checkToken("id", e.ID, MaxIDLen, true, '!'); err != nil {
		return err
	}
	if err := ValidateType(e.Type); err != nil {
		return err
	}
	if err := checkToken("source", e.Source, MaxSourceLen, false, '!'); err != nil {
		return err
	}
	if e.Timestamp == "" {
		return missing("timestamp")
	}
	if _, err := time.Parse(time.RFC3339Nano, e.Timestamp); err != nil {
		return &Error{Code: CodeInvalidField, Field: "timestamp", Message: fmt.Sprintf(
			"timestamp %s must be an RFC 3339 date-time such as 2026-11-26T10:00:00.123Z", quote(e.Timestamp))}
	}
	if err := checkToken("correlationId", e.CorrelationID, MaxCorrelationIDLen, true, '!'); err != nil {
		return err
	}
	if err := ValidateTenantID(e.TenantID); err != nil {
		return err
	}
	if err := checkToken("userId", e.UserID, MaxUserIDLen, true, ' '); err != nil {
		return err
	}
	if err := checkToken("version", e.Version, MaxVersionLen, true, '!'); err != nil {
		return err
	}
	if len(e.Data) > 0 {
		if err := checkDataObject(e.Data); err != nil {
			return err
		}
	}
	return nil
}

// ValidateTenantID reports whether s matches TenantIDPattern. Tenant ids
// become part of Redis keys, so nothing else may pass. The error is an
// *Error with Field "tenantId".
func ValidateTenantID(s string) error {
	if s == "" {
		return &Error{Code: CodeMissingField, Field: "tenantId", Message: "tenantId is required: set it in the body, " +
			"the X-Tenant-Id header or the sidecar's --tenant default"}
	}
	ok := len(s) <= MaxTenantIDLen && isAlnum(s[0])
	for i := 1; ok && i < len(s); i++ {
		c := s[i]
		ok = isAlnum(c) || c == '_' || c == '-'
	}
	if !ok {
		return &Error{Code: CodeInvalidField, Field: "tenantId",
			Message: fmt.Sprintf("tenantId %s must match %s", quote(s), TenantIDPattern)}
	}
	return nil
}

// ValidateType reports whether s is a valid event type: lower-case dotted,
// 2–5 segments ({module}.{action} … {module}.{entity}.{action}), each segment
// [a-z][a-z0-9_-]*, at most 128 characters. The error is an *Error with
// Field "type".
func ValidateType(s string) error {
	if s == "" {
		return missing("type")
	}
	ok := len(s) <= MaxTypeLen
	segments, segStart := 1, true
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			ok = !segStart
			segments++
			segStart = true
		case segStart:
			ok = 'a' <= c && c <= 'z'
			segStart = false
		default:
			ok = 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-'
		}
	}
	if !ok || segStart || segments < MinTypeSegments || segments > MaxTypeSegments {
		return &Error{Code: CodeInvalidField, Field: "type", Message: fmt.Sprintf(
			"type %s must be lower-case dotted like module.action or module.entity.action: "+
				"%d–%d segments matching [a-z][a-z0-9_-]*, at most %d characters",
			quote(s), MinTypeSegments, MaxTypeSegments, MaxTypeLen)}
	}
	return nil
}

// checkToken checks that s is at most maxLen bytes of ASCII in [lo, '~'].
// lo is '!' (no spaces) or ' ' (spaces allowed).
func checkToken(field, s string, maxLen int, required bool, lo byte) error {
	if s == "" {
		if required {
			return missing(field)
		}
		return nil
	}
	ok := len(s) <= maxLen
	for i := 0; ok && i < len(s); i++ {
		ok = lo <= s[i] && s[i] <= '~'
	}
	if ok {
		return nil
	}
	allowed := "printable ASCII without spaces"
	if lo == ' ' {
		allowed = "printable ASCII"
	}
	return &Error{Code: CodeInvalidField, Field: field, Message: fmt.Sprintf(
		"%s %s must be at most %d characters of %s", field, quote(s), maxLen, allowed)}
}

func missing(field string) *Error {
	return &Error{Code: CodeMissingField, Field: field, Message: field + " is required"}
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
