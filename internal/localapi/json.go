package localapi

import (
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/hyvve/sidecar/internal/event"
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
	b = event.AppendJSONString(b, code)
	b = append(b, `,"message":`...)
	b = event.AppendJSONString(b, msg)
	if field != "" {
		b = append(b, `,"field":`...)
		b = event.AppendJSONString(b, field)
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
	b = event.AppendJSONString(b, r.EventID)
	b = append(b, `,"tenantId":`...)
	b = event.AppendJSONString(b, tenant)
	b = append(b, `,"correlationId":`...)
	b = event.AppendJSONString(b, r.CorrelationID)
	b = append(b, `,"stream":`...)
	b = event.AppendJSONString(b, r.Stream)
	b = append(b, `,"streamId":`...)
	b = event.AppendJSONString(b, r.StreamID)
	return append(b, '}')
}
