package localapi

import (
	"errors"
	"fmt"
	"io"
	"net"
	"slices"

	"github.com/valyala/fasthttp"
)

// firstBodyChunk is the most requestBody allocates before any byte of the
// body has arrived; the buffer then doubles as the bytes come.
const firstBodyChunk = 64 << 10

// bodyTooLarge is requestBody's error for a body over its route's limit.
// Size is the Content-Length, or -1 when the body is chunked.
type bodyTooLarge struct{ Size, Limit int }

func (e *bodyTooLarge) Error() string { return e.describe("request body") }

// describe says that what is too large, for the error message.
func (e *bodyTooLarge) describe(what string) string {
	if e.Size < 0 {
		return fmt.Sprintf("%s is over the limit of %d bytes", what, e.Limit)
	}
	return fmt.Sprintf("%s is %d bytes; the limit is %d", what, e.Size, e.Limit)
}

// requestBody returns the request body, of at most limit bytes, or an error
// for the client: *bodyTooLarge, or an *apiError (408 when the body did not
// arrive within the read timeout, 400 when the client went away).
//
// The server streams bodies (fasthttp's StreamRequestBody), so the memory
// taken grows with the bytes that actually arrived (at most twice as much,
// plus firstBodyChunk), never with the Content-Length a client announces. A
// body over the limit is read and discarded, without keeping it, up to the
// batch limit, so that the client gets the 413 instead of a connection reset;
// a larger one closes the connection after the answer. The returned slice
// belongs to the request: copy what outlives the handler.
func (s *Server) requestBody(ctx *fasthttp.RequestCtx, limit int) ([]byte, error) {
	r := ctx.RequestBodyStream()
	if r == nil { // a request built in memory (tests, benchmarks) or without a body
		b := ctx.PostBody()
		if len(b) > limit {
			return nil, &bodyTooLarge{Size: len(b), Limit: limit}
		}
		return b, nil
	}
	size := ctx.Request.Header.ContentLength() // -1: chunked
	if size > limit {
		s.discardBody(ctx, r, size)
		return nil, &bodyTooLarge{Size: size, Limit: limit}
	}
	want := size
	if size < 0 {
		want = limit + 1 // one byte past the limit tells a chunked body is too large
	}
	buf := make([]byte, 0, min(want, firstBodyChunk))
	for {
		if len(buf) == cap(buf) {
			if len(buf) >= want {
				break
			}
			buf = slices.Grow(buf, min(len(buf), want-len(buf)))
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			ctx.SetConnectionClose()
			return nil, s.bodyReadError(err)
		}
	}
	if len(buf) > limit {
		s.discardBody(ctx, r, -1)
		return nil, &bodyTooLarge{Size: -1, Limit: limit}
	}
	return buf, nil
}

// discardBody reads what is left of a body that is over its limit, up to
// the batch limit, and closes the connection after the answer when more is
// left or reading fails. size is the Content-Length, -1 when unknown.
func (s *Server) discardBody(ctx *fasthttp.RequestCtx, r io.Reader, size int) {
	if size > s.maxBatchBytes {
		ctx.SetConnectionClose()
		return
	}
	n, err := io.CopyN(io.Discard, r, int64(s.maxBatchBytes)+1)
	if !errors.Is(err, io.EOF) || n > int64(s.maxBatchBytes) {
		ctx.SetConnectionClose()
	}
}

// bodyReadError is the answer to a body that could not be read.
func (s *Server) bodyReadError(err error) *apiError {
	var nerr net.Error
	if errors.As(err, &nerr) && nerr.Timeout() {
		return &apiError{Status: fasthttp.StatusRequestTimeout, Code: "request_timeout",
			Message: fmt.Sprintf("the request body did not arrive within %s", s.o.ReadTimeout)}
	}
	return &apiError{Status: fasthttp.StatusBadRequest, Code: "bad_request", Message: "reading the request body: " + err.Error()}
}
