package main

import (
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGlyph_every_label_character_has_a_5x7_bitmap(t *testing.T) {
	labels := "hyvve sidecar publish, 1024 B events, 2 CPUs, 5s per point (smoke)" +
		"THROUGHPUT (EVENTS/S) P99 LATENCY (MS, LOG SCALE) CONCURRENT CLIENTS" +
		"sidecar TCP sidecar unix no-op TCP (ceiling) no-op unix direct go-redis XADD 0.01 1.5K 2M"
	for _, r := range strings.ToUpper(labels) {
		g := glyph(r)
		rows := strings.Fields(g)
		if len(rows) != glyphH {
			t.Errorf("glyph(%q) has %d rows, want %d", r, len(rows), glyphH)
			continue
		}
		for _, row := range rows {
			if len(row) != glyphW || strings.Trim(row, "01") != "" {
				t.Errorf("glyph(%q) row %q, want %d bits", r, row, glyphW)
			}
		}
	}
}

func TestWritePlot_writes_a_png_with_every_series(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.png")
	ss := []series{
		{name: "a", color: 0xff0000, clients: []int{1, 32, 256}, tput: []float64{4000, 13000, 12000}, p99: []float64{0.7, 7, 45}},
		{name: "b", color: 0x0000ff, clients: []int{1, 32, 256}, tput: []float64{20000, 30000, 17000}, p99: []float64{0.2, 4, 0}},
	}
	if err := writePlot(path, "title", ss); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("decode the plot: %v", err)
	}
	if b := img.Bounds(); b.Dx() != plotW || b.Dy() != plotH {
		t.Errorf("plot is %dx%d, want %dx%d", b.Dx(), b.Dy(), plotW, plotH)
	}
	// Each series' colour must appear: its line was drawn.
	for _, s := range ss {
		found := false
		b := img.Bounds()
		for y := b.Min.Y; y < b.Max.Y && !found; y++ {
			for x := b.Min.X; x < b.Max.X && !found; x++ {
				r, g, bl, _ := img.At(x, y).RGBA()
				found = uint32(r>>8)<<16|uint32(g>>8)<<8|uint32(bl>>8) == s.color
			}
		}
		if !found {
			t.Errorf("series %q: colour %06x not in the plot", s.name, s.color)
		}
	}
}

func TestNiceStep(t *testing.T) {
	tests := []struct{ in, want float64 }{{0.7, 1}, {1.2, 2}, {3, 5}, {7, 10}, {1300, 2000}, {0, 1}}
	for _, tt := range tests {
		if got := niceStep(tt.in); got != tt.want {
			t.Errorf("niceStep(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
