package localapi

import (
	"strconv"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/hyvve/sidecar/internal/relay"
)

// writeError writes the SPEC error body {"error":{"code","message","field"}}.
func writeError(ctx *fasthttp.RequestCtx, status int, code, field, msg string) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(appendError(nil, code, field, msg, 0))
}

func appendError(b []byte, code, field, msg string, status int) []byte {
	b = append(b, `{"error":{"code":`...)
	b = appendString(b, code)
	b = append(b, `,"message":`...)
	b = appendString(b, msg)
	if field != "" {
		b = append(b, `,"field":`...)
		b = appendString(b, field)
	}
	if status != 0 {
		b = append(b, `,"status":`...)
		b = strconv.AppendInt(b, int64(status), 10)
	}
	return append(b, "}}"...)
}

// appendErrorItem writes a batch item's error; it carries the status the
// event would have had alone.
func appendErrorItem(b []byte, e *apiError) []byte {
	return appendError(b, e.Code, e.Field, e.Message, e.Status)
}

// appendResult writes {"id","tenantId","correlationId","stream","streamId"};
// for a repeated Idempotency-Key it is byte for byte the first answer.
func appendResult(b []byte, r *relay.PublishResult, tenant string) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, r.EventID)
	b = append(b, `,"tenantId":`...)
	b = appendString(b, tenant)
	b = append(b, `,"correlationId":`...)
	b = appendString(b, r.CorrelationID)
	b = append(b, `,"stream":`...)
	b = appendString(b, r.Stream)
	b = append(b, `,"streamId":`...)
	b = appendString(b, r.StreamID)
	return append(b, '}')
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			b = append(b, c)
			i++
			continue
		}
		if c < utf8.RuneSelf {
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
