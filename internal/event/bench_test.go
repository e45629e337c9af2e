package event

import (
	"fmt"
	"strings"
	"testing"
)

// benchBody returns a complete published event of about size bytes, padded
// with data fields.
func benchBody(size int) []byte {
	var b strings.Builder
	b.WriteString(`{"id":"0193d1c2-aaaa-7bbb-8ccc-123456789abc","type":"approval.requested","source":"platform",` +
		`"timestamp":"2026-11-26T10:00:00.123Z","correlationId":"5b0c6a1e-3f1d-4d5e-9a7b-2c8e1f0a9b3c",` +
		`"tenantId":"acme","userId":"u-42","version":"1.0","data":{"requestId":"r-1","amount":1250.75,` +
		`"approvers":["alice","bob"],"note":"needs sign-off \u00e9"`)
	for i := 0; b.Len() < size-40; i++ {
		fmt.Fprintf(&b, `,"field%03d":"value value value %03d"`, i, i)
	}
	b.WriteString("}}")
	return []byte(b.String())
}

var benchSizes = []struct {
	name string
	size int
}{{"1KiB", 1 << 10}, {"64KiB", 64 << 10}}

func BenchmarkDecode(b *testing.B) {
	for _, s := range benchSizes {
		body := benchBody(s.size)
		if _, err := Decode(body); err != nil {
			b.Fatal(err)
		}
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := Decode(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	for _, s := range benchSizes {
		e, err := Decode(benchBody(s.size))
		if err != nil {
			b.Fatal(err)
		}
		out := e.AppendJSON(nil)
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(out)))
			buf := make([]byte, 0, len(out))
			for b.Loop() {
				buf = e.AppendJSON(buf[:0])
			}
		})
	}
}

// BenchmarkPublishPath measures what the local API does per event before
// XADD: Decode, Fill, Validate, AppendValues.
func BenchmarkPublishPath(b *testing.B) {
	body := benchBody(1 << 10)
	d := Defaults{Tenant: "acme", Source: "platform"}
	vals := make([]any, 0, 32)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		e, err := Decode(body)
		if err != nil {
			b.Fatal(err)
		}
		e.ID, e.CorrelationID = "", ""
		e.Fill(d)
		if err := e.Validate(); err != nil {
			b.Fatal(err)
		}
		vals = e.AppendValues(vals[:0])
	}
}
