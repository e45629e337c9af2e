package main

import (
	"bufio"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"strconv"
	"strings"
)

// series is one line of the plot: a target's throughput and p99 latency at
// each client count.
type series struct {
	name    string
	color   uint32 // 0xRRGGBB
	clients []int
	tput    []float64 // events/s
	p99     []float64 // ms
}

// Colours as 0xRRGGBB.
const (
	white     = 0xffffff
	black     = 0x000000
	gridGray  = 0xe1e1e1
	labelGray = 0x5a5a5a
)

func rgb(c uint32) color.RGBA { return color.RGBA{uint8(c >> 16), uint8(c >> 8), uint8(c), 255} }

// Plot geometry, in pixels.
const (
	plotW, plotH   = 1200, 640
	panelTop       = 150
	panelBottom    = 560
	textScale      = 2
	glyphW, glyphH = 5, 7
)

// writePlot draws throughput (linear) and p99 latency (log scale) against
// the number of clients (log scale) side by side, with axes, ticks and a
// legend, and writes it as a PNG to path. Only image/png of the standard
// library is used: the text is a built-in 5x7 pixel font.
func writePlot(path, title string, ss []series) error {
	img := image.NewRGBA(image.Rect(0, 0, plotW, plotH))
	fillRect(img, img.Bounds(), rgb(white))
	drawText(img, 20, 14, title, rgb(black), textScale)

	// Legend: one swatch and name per series, wrapped over two rows if needed.
	x, y := 20, 48
	for _, s := range ss {
		w := 40 + textWidth(s.name, textScale) + 30
		if x+w > plotW-20 {
			x, y = 20, y+26
		}
		thickLine(img, x, y+7, x+30, y+7, rgb(s.color), 4)
		drawText(img, x+38, y, s.name, rgb(black), textScale)
		x += w
	}

	var xs []int
	for _, s := range ss {
		for _, c := range s.clients {
			if !containsInt(xs, c) {
				xs = append(xs, c)
			}
		}
	}
	left := panel{x0: 100, x1: 570, y0: panelTop, y1: panelBottom, clients: xs}
	right := panel{x0: 700, x1: 1170, y0: panelTop, y1: panelBottom, clients: xs, logY: true}
	pick := func(s series, p99 bool) []float64 {
		if p99 {
			return s.p99
		}
		return s.tput
	}
	for _, p := range []*panel{&left, &right} {
		for _, s := range ss {
			for _, v := range pick(s, p.logY) {
				if v > 0 {
					p.ymin = minPos(p.ymin, v)
					p.ymax = max(p.ymax, v)
				}
			}
		}
		p.scale()
	}
	left.axes(img, "THROUGHPUT (EVENTS/S)")
	right.axes(img, "P99 LATENCY (MS, LOG SCALE)")
	for _, p := range []*panel{&left, &right} {
		for _, s := range ss {
			p.line(img, s.clients, pick(s, p.logY), rgb(s.color))
		}
	}

	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	w := bufio.NewWriter(f)
	if err := png.Encode(w, img); err != nil {
		f.Close()
		return fmt.Errorf("plot: encode %s: %w", path, err)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("plot: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("plot: write %s: %w", path, err)
	}
	return nil
}

// panel is one chart: x is log2 of the client count, y linear from 0 or,
// with logY, log10 between whole decades.
type panel struct {
	x0, x1, y0, y1 int
	clients        []int
	logY           bool
	ymin, ymax     float64 // of the data, then of the axis after scale
	yticks         []float64
}

func (p *panel) scale() {
	if p.ymax <= 0 {
		p.ymin, p.ymax = 0, 1
	}
	if p.logY {
		lo, hi := math.Floor(math.Log10(p.ymin)), math.Ceil(math.Log10(p.ymax))
		if hi <= lo {
			hi = lo + 1
		}
		p.ymin, p.ymax = math.Pow(10, lo), math.Pow(10, hi)
		for e := lo; e <= hi; e++ {
			p.yticks = append(p.yticks, math.Pow(10, e))
		}
		return
	}
	step := niceStep(p.ymax * 1.1 / 5)
	p.ymin, p.ymax = 0, step*math.Ceil(p.ymax*1.1/step)
	for v := 0.0; v <= p.ymax+step/2; v += step {
		p.yticks = append(p.yticks, v)
	}
}

// niceStep rounds v up to 1, 2 or 5 times a power of ten.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	pow := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*pow >= v {
			return m * pow
		}
	}
	return 10 * pow
}

func (p *panel) px(clients int) int {
	lo, hi := math.Log2(float64(minInt(p.clients))), math.Log2(float64(maxInt(p.clients)))
	pad := 0.06 * float64(p.x1-p.x0)
	if hi <= lo {
		return (p.x0 + p.x1) / 2
	}
	f := (math.Log2(float64(clients)) - lo) / (hi - lo)
	return p.x0 + int(pad+f*(float64(p.x1-p.x0)-2*pad))
}

func (p *panel) py(v float64) int {
	var f float64
	if p.logY {
		f = (math.Log10(v) - math.Log10(p.ymin)) / (math.Log10(p.ymax) - math.Log10(p.ymin))
	} else {
		f = (v - p.ymin) / (p.ymax - p.ymin)
	}
	return p.y1 - int(f*float64(p.y1-p.y0))
}

func (p *panel) axes(img *image.RGBA, title string) {
	drawText(img, p.x0, p.y0-28, title, rgb(black), textScale)
	for _, v := range p.yticks {
		y := p.py(v)
		fillRect(img, image.Rect(p.x0, y, p.x1, y+1), rgb(gridGray))
		l := tickLabel(v)
		drawText(img, p.x0-10-textWidth(l, textScale), y-glyphH*textScale/2, l, rgb(labelGray), textScale)
	}
	for _, c := range p.clients {
		x := p.px(c)
		fillRect(img, image.Rect(x, p.y0, x+1, p.y1), rgb(gridGray))
		fillRect(img, image.Rect(x, p.y1, x+1, p.y1+6), rgb(black))
		l := strconv.Itoa(c)
		drawText(img, x-textWidth(l, textScale)/2, p.y1+12, l, rgb(labelGray), textScale)
	}
	fillRect(img, image.Rect(p.x0, p.y0, p.x0+2, p.y1+1), rgb(black))
	fillRect(img, image.Rect(p.x0, p.y1, p.x1, p.y1+2), rgb(black))
	l := "CONCURRENT CLIENTS"
	drawText(img, (p.x0+p.x1-textWidth(l, textScale))/2, p.y1+42, l, rgb(black), textScale)
}

// line joins the series' points with a thick line and marks each one;
// points without a positive value are left out.
func (p *panel) line(img *image.RGBA, clients []int, vals []float64, col color.RGBA) {
	havePrev := false
	var px, py int
	for i, c := range clients {
		if i >= len(vals) || vals[i] <= 0 {
			havePrev = false
			continue
		}
		x, y := p.px(c), p.py(vals[i])
		if havePrev {
			thickLine(img, px, py, x, y, col, 3)
		}
		fillRect(img, image.Rect(x-5, y-5, x+6, y+6), col)
		px, py, havePrev = x, y, true
	}
}

// tickLabel writes v compactly: 0.01, 0.5, 20, 15K, 1.5M.
func tickLabel(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "K"
	default:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
}

func fillRect(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

// thickLine draws a w pixels wide line with Bresenham's algorithm, stamping
// a w×w square at every step.
func thickLine(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA, w int) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		fillRect(img, image.Rect(x0-w/2, y0-w/2, x0-w/2+w, y0-w/2+w), c)
		if x0 == x1 && y0 == y1 {
			return
		}
		if e2 := 2 * e; e2 >= dy {
			e += dy
			x0 += sx
		} else {
			e += dx
			y0 += sy
		}
	}
}

func textWidth(s string, scale int) int { return len(s) * (glyphW + 1) * scale }

// drawText writes s (upper-cased; characters without a glyph are blanks)
// with its top-left corner at x, y, each font pixel scale×scale.
func drawText(img *image.RGBA, x, y int, s string, c color.RGBA, scale int) {
	for _, r := range strings.ToUpper(s) {
		if g := glyph(r); g != "" {
			for row, bits := range strings.Fields(g) {
				for col, b := range bits {
					if b == '1' {
						fillRect(img, image.Rect(x+col*scale, y+row*scale, x+(col+1)*scale, y+(row+1)*scale), c)
					}
				}
			}
		}
		x += (glyphW + 1) * scale
	}
}

// glyph is the character's bitmap in a 5x7 pixel font, seven rows of five
// bits, or "" if the font lacks it.
func glyph(r rune) string {
	switch r {
	case '0':
		return "01110 10001 10011 10101 11001 10001 01110"
	case '1':
		return "00100 01100 00100 00100 00100 00100 01110"
	case '2':
		return "01110 10001 00001 00010 00100 01000 11111"
	case '3':
		return "11111 00010 00100 00010 00001 10001 01110"
	case '4':
		return "00010 00110 01010 10010 11111 00010 00010"
	case '5':
		return "11111 10000 11110 00001 00001 10001 01110"
	case '6':
		return "00110 01000 10000 11110 10001 10001 01110"
	case '7':
		return "11111 00001 00010 00100 01000 01000 01000"
	case '8':
		return "01110 10001 10001 01110 10001 10001 01110"
	case '9':
		return "01110 10001 10001 01111 00001 00010 01100"
	case 'A':
		return "01110 10001 10001 11111 10001 10001 10001"
	case 'B':
		return "11110 10001 10001 11110 10001 10001 11110"
	case 'C':
		return "01110 10001 10000 10000 10000 10001 01110"
	case 'D':
		return "11100 10010 10001 10001 10001 10010 11100"
	case 'E':
		return "11111 10000 10000 11110 10000 10000 11111"
	case 'F':
		return "11111 10000 10000 11110 10000 10000 10000"
	case 'G':
		return "01110 10001 10000 10111 10001 10001 01111"
	case 'H':
		return "10001 10001 10001 11111 10001 10001 10001"
	case 'I':
		return "01110 00100 00100 00100 00100 00100 01110"
	case 'J':
		return "00111 00010 00010 00010 00010 10010 01100"
	case 'K':
		return "10001 10010 10100 11000 10100 10010 10001"
	case 'L':
		return "10000 10000 10000 10000 10000 10000 11111"
	case 'M':
		return "10001 11011 10101 10101 10001 10001 10001"
	case 'N':
		return "10001 10001 11001 10101 10011 10001 10001"
	case 'O':
		return "01110 10001 10001 10001 10001 10001 01110"
	case 'P':
		return "11110 10001 10001 11110 10000 10000 10000"
	case 'Q':
		return "01110 10001 10001 10001 10101 10010 01101"
	case 'R':
		return "11110 10001 10001 11110 10100 10010 10001"
	case 'S':
		return "01111 10000 10000 01110 00001 00001 11110"
	case 'T':
		return "11111 00100 00100 00100 00100 00100 00100"
	case 'U':
		return "10001 10001 10001 10001 10001 10001 01110"
	case 'V':
		return "10001 10001 10001 10001 10001 01010 00100"
	case 'W':
		return "10001 10001 10001 10101 10101 10101 01010"
	case 'X':
		return "10001 10001 01010 00100 01010 10001 10001"
	case 'Y':
		return "10001 10001 10001 01010 00100 00100 00100"
	case 'Z':
		return "11111 00001 00010 00100 01000 10000 11111"
	case ' ':
		return "00000 00000 00000 00000 00000 00000 00000"
	case '.':
		return "00000 00000 00000 00000 00000 01100 01100"
	case ',':
		return "00000 00000 00000 00000 01100 00100 01000"
	case '-':
		return "00000 00000 00000 11111 00000 00000 00000"
	case '/':
		return "00000 00001 00010 00100 01000 10000 00000"
	case '(':
		return "00010 00100 01000 01000 01000 00100 00010"
	case ')':
		return "01000 00100 00010 00010 00010 00100 01000"
	case ':':
		return "00000 01100 01100 00000 01100 01100 00000"
	case '%':
		return "11000 11001 00010 00100 01000 10011 00011"
	case '=':
		return "00000 00000 11111 00000 11111 00000 00000"
	case '+':
		return "00000 00100 00100 11111 00100 00100 00000"
	case '_':
		return "00000 00000 00000 00000 00000 00000 11111"
	case '<':
		return "00010 00100 01000 10000 01000 00100 00010"
	case '>':
		return "01000 00100 00010 00001 00010 00100 01000"
	}
	return ""
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v < 0:
		return -1
	case v > 0:
		return 1
	}
	return 0
}

func minPos(a, b float64) float64 {
	if a <= 0 || b < a {
		return b
	}
	return a
}

func containsInt(xs []int, v int) bool {
	for _, x := range xs {
		if x == v {
			return true
		}
	}
	return false
}

func minInt(xs []int) int {
	m := xs[0]
	for _, x := range xs[1:] {
		m = min(m, x)
	}
	return m
}

func maxInt(xs []int) int {
	m := xs[0]
	for _, x := range xs[1:] {
		m = max(m, x)
	}
	return m
}
