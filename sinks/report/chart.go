package report

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lapse-dev/lapse/notebooks"
)

// The charts are inline SVG drawn here: no script, no font, no request.
// Every plotted value is one element a test can count: a <circle
// class="pt"> on a line, a <rect class="bar"> in a bar chart or histogram.
// Each carries a <title> (the browser's tooltip) with its label and value.

const (
	chartW    = 960 // viewBox width; the SVG scales to its box
	chartH    = 300
	padTop    = 14
	padRight  = 16
	padBottom = 46
	fontPx    = 12
)

// palette: colour-blind-safe, distinct in print (Tableau 10).
var palette = []string{"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"}

// stateColours keep a lifecycle state the same colour on every chart.
var stateColours = map[string]string{
	"registered": "#c7d3e3", "expiring": "#edc948", "grace": "#f28e2b", "redemption": "#e15759",
	"pending_delete": "#9d2235", "available": "#6b3fa0", "reserved": "#76b7b2", "invalid": "#9c755f", "unknown": "#8c8c8c",
}

// stateOrder is the lifecycle, healthy to lapsed.
var stateOrder = map[string]int{
	"registered": 0, "expiring": 1, "grace": 2, "redemption": 3, "pending_delete": 4, "available": 5,
	"reserved": 6, "invalid": 7, "unknown": 8,
}

func allStates(series []string) bool {
	for _, s := range series {
		if _, ok := stateOrder[s]; !ok {
			return false
		}
	}
	return true
}

// xKind is how a chart places its x values.
type xKind int

const (
	xCategory xKind = iota
	xTime
	xNumber
)

// point is one plotted value.
type point struct {
	x      any     // the row's x value
	xs     string  // x as text
	xn     float64 // x as a number (time: Unix seconds) when not a category
	series string
	y      float64
}

// chartData is a result read for a chart: the points, the series in order,
// the x categories in order.
type chartData struct {
	kind   xKind
	points []point
	series []string
	cats   []string
}

// columnIndex finds a named column or says which exist.
func columnIndex(r notebooks.Result, role, name string) (int, error) {
	if i := r.Col(name); i >= 0 {
		return i, nil
	}
	return -1, fmt.Errorf("chart: %s column %q is not in the result (its columns: %s)", role, name, strings.Join(r.Columns, ", "))
}

// readChart reads the points of a line or bar chart (or a histogram with y).
func readChart(c notebooks.Chart, r notebooks.Result) (chartData, error) {
	var d chartData
	xi, err := columnIndex(r, "x", c.X)
	if err != nil {
		return d, err
	}
	yi := make([]int, len(c.Y))
	for k, y := range c.Y {
		if yi[k], err = columnIndex(r, "y", y); err != nil {
			return d, err
		}
	}
	si := -1
	if c.Series != "" {
		if si, err = columnIndex(r, "series", c.Series); err != nil {
			return d, err
		}
	}
	// The x axis: time when every x is a date or timestamp, numbers when
	// every x is a number, categories otherwise.
	d.kind = xTime
	allNum := true
	for _, row := range r.Rows {
		switch row[xi].(type) {
		case time.Time:
			allNum = false
		case nil:
		default:
			if _, ok := notebooks.Number(row[xi]); !ok {
				allNum = false
			}
			d.kind = xCategory
		}
	}
	if d.kind == xCategory && allNum {
		d.kind = xNumber
	}
	seenS, seenC := map[string]bool{}, map[string]bool{}
	if si < 0 {
		d.series = append(d.series, c.Y...)
	}
	for _, row := range r.Rows {
		if row[xi] == nil {
			continue
		}
		p := point{x: row[xi], xs: notebooks.Format(row[xi])}
		switch x := row[xi].(type) {
		case time.Time:
			p.xn = float64(x.Unix())
		default:
			p.xn, _ = notebooks.Number(x)
		}
		for k, j := range yi {
			if row[j] == nil {
				continue
			}
			v, ok := notebooks.Number(row[j])
			if !ok {
				return d, fmt.Errorf("chart: y column %q holds %s values, not numbers", c.Y[k], r.Types[j])
			}
			q := p
			q.y = v
			q.series = c.Y[k]
			if si >= 0 {
				q.series = notebooks.Format(row[si])
				if row[si] == nil {
					q.series = "(null)"
				}
				if !seenS[q.series] {
					seenS[q.series] = true
					d.series = append(d.series, q.series)
				}
			}
			if !seenC[q.xs] {
				seenC[q.xs] = true
				d.cats = append(d.cats, q.xs)
			}
			d.points = append(d.points, q)
		}
	}
	// Lifecycle states stack in the order a domain goes through them.
	if len(d.series) > 1 && allStates(d.series) {
		sort.SliceStable(d.series, func(a, b int) bool { return stateOrder[d.series[a]] < stateOrder[d.series[b]] })
	}
	if d.kind != xCategory {
		// Categories of dates and numbers go in their order.
		order := map[string]float64{}
		for _, p := range d.points {
			order[p.xs] = p.xn
		}
		sort.SliceStable(d.cats, func(a, b int) bool { return order[d.cats[a]] < order[d.cats[b]] })
	}
	return d, nil
}

func gcd(a, b float64) float64 {
	for b != 0 {
		a, b = b, math.Mod(a, b)
	}
	return a
}

// integers reports whether every value is a whole number.
func (d chartData) integers() bool {
	for _, p := range d.points {
		if p.y != math.Trunc(p.y) {
			return false
		}
	}
	return true
}

// colours gives each series its colour: a state's own, grey for "other",
// the palette for the rest.
func colours(series []string) map[string]string {
	out := map[string]string{}
	n := 0
	for _, s := range series {
		switch c, ok := stateColours[s]; {
		case ok:
			out[s] = c
		case s == "other" || s == "(null)":
			out[s] = "#a0a0a0"
		default:
			out[s] = palette[n%len(palette)]
			n++
		}
	}
	return out
}

// Render draws the cell's chart: "" for a table or headline.
func renderChart(c notebooks.Chart, r notebooks.Result) (template.HTML, error) {
	if len(r.Rows) == 0 {
		switch c.Kind {
		case notebooks.ChartLine, notebooks.ChartBar, notebooks.ChartHistogram:
			return `<p class="empty">No rows yet: nothing to draw.</p>`, nil
		}
	}
	switch c.Kind {
	case notebooks.ChartLine:
		d, err := readChart(c, r)
		if err != nil {
			return "", err
		}
		return lineChart(c, d), nil
	case notebooks.ChartBar:
		d, err := readChart(c, r)
		if err != nil {
			return "", err
		}
		if c.Horizontal {
			return hbarChart(c, d, chartW), nil
		}
		return barChart(c, d), nil
	case notebooks.ChartHistogram:
		return histogram(c, r)
	}
	return "", nil
}

// svgOpen starts an SVG of the given height with an accessible label.
func svgOpen(b *strings.Builder, h int, label string) { svgOpenW(b, chartW, h, label) }

func svgOpenW(b *strings.Builder, w, h int, label string) {
	fmt.Fprintf(b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s" preserveAspectRatio="xMinYMin meet">`, w, h, esc(label))
}

func esc(s string) string { return html.EscapeString(s) }

// legend lists the series with their colours (none for a single series).
func legend(b *strings.Builder, series []string, col map[string]string) {
	if len(series) < 2 {
		return
	}
	b.WriteString(`<ul class="legend">`)
	for _, s := range series {
		fmt.Fprintf(b, `<li><svg width="12" height="12" aria-hidden="true"><rect width="12" height="12" rx="2" fill="%s"></rect></svg>%s</li>`, col[s], esc(s))
	}
	b.WriteString(`</ul>`)
}

// scale maps data to pixels.
type scale struct {
	d0, d1 float64 // domain
	p0, p1 float64 // pixels
	log    bool
}

func (s scale) at(v float64) float64 {
	if s.log {
		v = math.Log10(math.Max(v, 1))
	}
	if s.d1 == s.d0 {
		return (s.p0 + s.p1) / 2
	}
	return s.p0 + (v-s.d0)/(s.d1-s.d0)*(s.p1-s.p0)
}

// niceTicks returns about n round tick values covering [lo, hi]; with
// integers, no step is below 1.
func niceTicks(lo, hi float64, n int, integers bool) []float64 {
	if hi <= lo {
		hi = lo + 1
	}
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	if integers && step < 1 {
		step = 1
	} else if integers && step != math.Trunc(step) {
		step = math.Ceil(step)
	}
	var out []float64
	for v := math.Floor(lo/step) * step; v <= hi+step*1e-9; v += step {
		out = append(out, math.Round(v/step)*step)
		if len(out) > 50 {
			break
		}
	}
	if out[len(out)-1] < hi {
		out = append(out, out[len(out)-1]+step)
	}
	return out
}

// yAxis is a value axis: its scale and ticks.
func yAxis(lo, hi float64, p0, p1 float64, logScale, integers bool) (scale, []float64) {
	if logScale {
		top := math.Ceil(math.Log10(math.Max(hi, 10)))
		var ticks []float64
		for e := 0.0; e <= top; e++ {
			ticks = append(ticks, math.Pow(10, e))
		}
		return scale{0, top, p0, p1, true}, ticks
	}
	lo = math.Min(lo, 0)
	ticks := niceTicks(lo, hi, 5, integers)
	return scale{ticks[0], ticks[len(ticks)-1], p0, p1, false}, ticks
}

// num formats a value for a label: integers with thousands separators,
// others with up to 3 significant decimals.
func num(v float64, unit string) string {
	var s string
	switch {
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		s = group(strconv.FormatInt(int64(v), 10))
	case math.Abs(v) >= 100:
		s = group(strconv.FormatFloat(math.Round(v), 'f', 0, 64))
	default:
		s = strconv.FormatFloat(v, 'f', -1, 64)
		if len(s) > 6 {
			s = strconv.FormatFloat(v, 'g', 3, 64)
		}
	}
	switch unit {
	case "":
		return s
	case "%":
		return s + "%"
	}
	return s + " " + unit
}

// group puts thousands separators into an integer's digits.
func group(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// yGrid draws the horizontal gridlines and value labels.
func yGrid(b *strings.Builder, ys scale, ticks []float64, left, right float64, unit string) {
	for _, t := range ticks {
		y := ys.at(t)
		fmt.Fprintf(b, `<line class="grid" x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f"></line>`, left, right, y, y)
		fmt.Fprintf(b, `<text class="tick" x="%.1f" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`, left-6, y, esc(num(t, unit)))
	}
}

// leftPad is the room the value labels need.
func leftPad(ticks []float64, unit string) float64 {
	w := 0
	for _, t := range ticks {
		w = max(w, len(num(t, unit)))
	}
	return float64(w)*7 + 14
}

// labelEvery is the step between shown x labels so that about n fit.
func labelEvery(count, fit int) int {
	if count <= fit {
		return 1
	}
	return int(math.Ceil(float64(count) / float64(fit)))
}

// xLabel shortens a category label for the axis.
func xLabel(s string) string {
	if len(s) > 18 {
		return s[:17] + "…"
	}
	return s
}

func lineChart(c notebooks.Chart, d chartData) template.HTML {
	var b strings.Builder
	col := colours(d.series)
	legend(&b, d.series, col)
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range d.points {
		lo, hi = math.Min(lo, p.y), math.Max(hi, p.y)
	}
	ys, ticks := yAxis(lo, hi, chartH-padBottom, padTop, c.Log, d.integers())
	left, right := leftPad(ticks, c.Unit), float64(chartW-padRight)
	svgOpen(&b, chartH, "line chart")
	yGrid(&b, ys, ticks, left, right, c.Unit)
	// x: continuous for dates and numbers, evenly spaced categories else.
	catPos := map[string]int{}
	for i, s := range d.cats {
		catPos[s] = i
	}
	var xs scale
	if d.kind == xCategory {
		xs = scale{0, float64(max(len(d.cats)-1, 1)), left + 8, right - 8, false}
	} else {
		x0, x1 := math.Inf(1), math.Inf(-1)
		for _, p := range d.points {
			x0, x1 = math.Min(x0, p.xn), math.Max(x1, p.xn)
		}
		xs = scale{x0, x1, left + 8, right - 8, false}
	}
	xAt := func(p point) float64 {
		if d.kind == xCategory {
			return xs.at(float64(catPos[p.xs]))
		}
		return xs.at(p.xn)
	}
	// x labels: about 9 of the distinct x values, and the last one.
	every := labelEvery(len(d.cats), 9)
	last := len(d.cats) - 1
	for i, s := range d.cats {
		if i != last && (i%every != 0 || last-i < (every*2+2)/3) {
			continue // keep the last label clear of its neighbour
		}
		var x float64
		if d.kind == xCategory {
			x = xs.at(float64(i))
		} else {
			for _, p := range d.points {
				if p.xs == s {
					x = xs.at(p.xn)
					break
				}
			}
		}
		anchor := "middle"
		if i == last && i > 0 {
			anchor = "end"
		}
		fmt.Fprintf(&b, `<line class="axis" x1="%.1f" x2="%.1f" y1="%d" y2="%d"></line>`, x, x, chartH-padBottom, chartH-padBottom+4)
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%d" text-anchor="%s">%s</text>`, x, chartH-padBottom+18, anchor, esc(xLabel(s)))
	}
	fmt.Fprintf(&b, `<line class="axis" x1="%.1f" x2="%.1f" y1="%d" y2="%d"></line>`, left, right, chartH-padBottom, chartH-padBottom)
	r := 3.0
	if len(d.points) > 400 {
		r = 1.8
	}
	for _, s := range d.series {
		var pts []point
		for _, p := range d.points {
			if p.series == s {
				pts = append(pts, p)
			}
		}
		sort.SliceStable(pts, func(a, b int) bool { return xAt(pts[a]) < xAt(pts[b]) })
		var path strings.Builder
		for i, p := range pts {
			if i > 0 {
				path.WriteByte(' ')
			}
			fmt.Fprintf(&path, "%.1f,%.1f", xAt(p), ys.at(p.y))
		}
		fmt.Fprintf(&b, `<g class="series" data-series="%s">`, esc(s))
		if len(pts) > 1 {
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"></polyline>`, col[s], path.String())
		}
		for _, p := range pts {
			fmt.Fprintf(&b, `<circle class="pt" cx="%.1f" cy="%.1f" r="%.1f" fill="%s"><title>%s · %s: %s</title></circle>`,
				xAt(p), ys.at(p.y), r, col[s], esc(p.xs), esc(s), esc(num(p.y, c.Unit)))
		}
		b.WriteString(`</g>`)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// barChart draws vertical bars per category: stacked by series, or side by
// side for several y columns.
func barChart(c notebooks.Chart, d chartData) template.HTML {
	var b strings.Builder
	col := colours(d.series)
	legend(&b, d.series, col)
	stacked := c.Series != ""
	catPos, labels := barSlots(d)
	// The extent: stacks add up per category (negatives downwards).
	posSum, negSum := map[string]float64{}, map[string]float64{}
	lo, hi := 0.0, 0.0
	for _, p := range d.points {
		if stacked {
			if p.y >= 0 {
				posSum[p.xs] += p.y
				hi = math.Max(hi, posSum[p.xs])
			} else {
				negSum[p.xs] += p.y
				lo = math.Min(lo, negSum[p.xs])
			}
		} else {
			lo, hi = math.Min(lo, p.y), math.Max(hi, p.y)
		}
	}
	ys, ticks := yAxis(lo, hi, chartH-padBottom, padTop, false, d.integers())
	left, right := leftPad(ticks, c.Unit), float64(chartW-padRight)
	svgOpen(&b, chartH, "bar chart")
	yGrid(&b, ys, ticks, left, right, c.Unit)
	n := max(len(labels), 1)
	band := (right - left) / float64(n)
	gap := math.Min(band*0.2, 6)
	if band < 4 {
		gap = 0
	}
	groups := 1
	if !stacked {
		groups = max(len(d.series), 1)
	}
	barW := math.Max((band-gap)/float64(groups), 0.5)
	seriesPos := map[string]int{}
	for i, s := range d.series {
		seriesPos[s] = i
	}
	every := labelEvery(len(labels), int((right-left)/80))
	for i, s := range labels {
		if i%every != 0 {
			continue
		}
		x := left + band*(float64(i)+0.5)
		anchor := "middle"
		if x+3.5*float64(len([]rune(xLabel(s)))) > chartW-2 {
			x, anchor = left+band*float64(i+1), "end"
		}
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%d" text-anchor="%s">%s</text>`, x, chartH-padBottom+18, anchor, esc(xLabel(s)))
	}
	up, down := map[string]float64{}, map[string]float64{}
	// Draw in series order so a stack reads the same in every category.
	for _, s := range d.series {
		fmt.Fprintf(&b, `<g class="series" data-series="%s">`, esc(s))
		for _, p := range d.points {
			if p.series != s {
				continue
			}
			x := left + band*float64(catPos[p.xs]) + gap/2
			var y0, y1 float64
			switch {
			case stacked && p.y >= 0:
				y0, y1 = up[p.xs], up[p.xs]+p.y
				up[p.xs] = y1
			case stacked:
				y0, y1 = down[p.xs], down[p.xs]+p.y
				down[p.xs] = y1
			default:
				x += barW * float64(seriesPos[s])
				y0, y1 = 0, p.y
			}
			top, bottom := ys.at(math.Max(y0, y1)), ys.at(math.Min(y0, y1))
			fmt.Fprintf(&b, `<rect class="bar" x="%.2f" y="%.2f" width="%.2f" height="%.2f" fill="%s"><title>%s · %s: %s</title></rect>`,
				x, top, barW, math.Max(bottom-top, 0), col[s], esc(p.xs), esc(s), esc(num(p.y, c.Unit)))
		}
		b.WriteString(`</g>`)
	}
	fmt.Fprintf(&b, `<line class="axis" x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f"></line>`, left, right, ys.at(0), ys.at(0))
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// barSlots places the categories of a bar chart: dates and numbers on an
// even axis whose step is the smallest gap between two of them (a night
// without a row stays an empty slot), text in its order. It returns each
// category's slot and the label of every slot.
func barSlots(d chartData) (map[string]int, []string) {
	pos := map[string]int{}
	if d.kind != xCategory && len(d.cats) > 1 {
		xn := map[string]float64{}
		for _, p := range d.points {
			xn[p.xs] = p.xn
		}
		step := 0.0
		for i := 1; i < len(d.cats); i++ {
			if g := xn[d.cats[i]] - xn[d.cats[i-1]]; g > 0 && (step == 0 || g < step) {
				step = g
			}
		}
		first := xn[d.cats[0]]
		if step > 0 {
			n := int(math.Round((xn[d.cats[len(d.cats)-1]]-first)/step)) + 1
			if n <= 1500 {
				labels := make([]string, n)
				for i := range labels {
					v := first + float64(i)*step
					if d.kind == xTime {
						t := time.Unix(int64(v), 0).UTC()
						labels[i] = notebooks.Format(t)
					} else {
						labels[i] = num(v, "")
					}
				}
				for _, c := range d.cats {
					i := int(math.Round((xn[c] - first) / step))
					pos[c] = i
					labels[i] = c
				}
				return pos, labels
			}
		}
	}
	for i, c := range d.cats {
		pos[c] = i
	}
	return pos, d.cats
}

// hbarChart draws one horizontal bar (or stack) per category, the labels on
// the left: for rankings (TLDs, domains).
func hbarChart(c notebooks.Chart, d chartData, width int) template.HTML {
	var b strings.Builder
	col := colours(d.series)
	legend(&b, d.series, col)
	stacked := c.Series != ""
	groups := 1
	if !stacked {
		groups = max(len(d.series), 1)
	}
	rowH := 20.0 * float64(groups)
	if groups > 1 {
		rowH = 12*float64(groups) + 8
	}
	h := int(float64(len(d.cats))*rowH) + padTop + 30
	catPos := map[string]int{}
	labelW := 0
	for i, s := range d.cats {
		catPos[s] = i
		labelW = max(labelW, len([]rune(xLabel(s))))
	}
	sum := map[string]float64{}
	hi := 0.0
	for _, p := range d.points {
		if stacked {
			sum[p.xs] += math.Max(p.y, 0)
			hi = math.Max(hi, sum[p.xs])
		} else {
			hi = math.Max(hi, p.y)
		}
	}
	left := math.Min(float64(labelW)*7+16, float64(width)/3)
	right := float64(width - padRight - 60)
	xs, ticks := yAxis(0, hi, left, right, false, d.integers())
	svgOpenW(&b, width, h, "bar chart")
	bottom := float64(h - 24)
	for _, t := range ticks {
		x := xs.at(t)
		fmt.Fprintf(&b, `<line class="grid" x1="%.1f" x2="%.1f" y1="%d" y2="%.1f"></line>`, x, x, padTop, bottom)
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, x, bottom+16, esc(num(t, c.Unit)))
	}
	for i, s := range d.cats {
		y := float64(padTop) + rowH*(float64(i)+0.5)
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`, left-6, y, esc(xLabel(s)))
	}
	seriesPos := map[string]int{}
	for i, s := range d.series {
		seriesPos[s] = i
	}
	barH := rowH - 6
	if groups > 1 {
		barH = 12
	}
	at := map[string]float64{}
	for _, s := range d.series {
		fmt.Fprintf(&b, `<g class="series" data-series="%s">`, esc(s))
		for _, p := range d.points {
			if p.series != s {
				continue
			}
			y := float64(padTop) + rowH*float64(catPos[p.xs]) + 3
			v0 := 0.0
			if stacked {
				v0 = at[p.xs]
				at[p.xs] += math.Max(p.y, 0)
			} else {
				y += barH * float64(seriesPos[s])
			}
			x0, x1 := xs.at(v0), xs.at(v0+math.Max(p.y, 0))
			fmt.Fprintf(&b, `<rect class="bar" x="%.2f" y="%.2f" width="%.2f" height="%.2f" fill="%s"><title>%s · %s: %s</title></rect>`,
				x0, y, math.Max(x1-x0, 0), barH, col[s], esc(p.xs), esc(s), esc(num(p.y, c.Unit)))
		}
		b.WriteString(`</g>`)
	}
	// Totals at the end of each row.
	for _, s := range d.cats {
		total := 0.0
		for _, p := range d.points {
			if p.xs == s && (stacked || groups == 1) {
				total += math.Max(p.y, 0)
			}
		}
		if stacked || groups == 1 {
			y := float64(padTop) + rowH*(float64(catPos[s])+0.5)
			fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%.1f" dominant-baseline="middle">%s</text>`, xs.at(total)+5, y, esc(num(total, c.Unit)))
		}
	}
	fmt.Fprintf(&b, `<line class="axis" x1="%.1f" x2="%.1f" y1="%d" y2="%.1f"></line>`, left, left, padTop, bottom)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// histogram draws bars on a numeric x axis: one per row (y given), or the
// rows counted per bin (no y).
func histogram(c notebooks.Chart, r notebooks.Result) (template.HTML, error) {
	xi, err := columnIndex(r, "x", c.X)
	if err != nil {
		return "", err
	}
	yi := -1
	if len(c.Y) == 1 {
		if yi, err = columnIndex(r, "y", c.Y[0]); err != nil {
			return "", err
		}
	}
	type bin struct{ lo, hi, n float64 }
	var bins []bin
	var xsv []float64
	for _, row := range r.Rows {
		if row[xi] == nil {
			continue
		}
		x, ok := notebooks.Number(row[xi])
		if !ok {
			return "", fmt.Errorf("chart: histogram x column %q holds %s values, not numbers", c.X, r.Types[xi])
		}
		if yi < 0 {
			xsv = append(xsv, x)
			continue
		}
		if row[yi] == nil {
			continue
		}
		y, ok := notebooks.Number(row[yi])
		if !ok {
			return "", fmt.Errorf("chart: histogram y column %q holds %s values, not numbers", c.Y[0], r.Types[yi])
		}
		bins = append(bins, bin{x, x, y})
	}
	if yi >= 0 {
		// Pre-binned: each bar as wide as the smallest step between x
		// values (1 for whole days).
		sort.SliceStable(bins, func(a, b int) bool { return bins[a].lo < bins[b].lo })
		// Whole numbers: the bin width is the greatest common divisor of
		// the gaps (1 for days, 10 for tens); else the smallest gap.
		w, ints := 0.0, true
		for _, k := range bins {
			ints = ints && k.lo == math.Trunc(k.lo)
		}
		for i := 1; i < len(bins); i++ {
			g := bins[i].lo - bins[i-1].lo
			switch {
			case g <= 0:
			case ints:
				w = gcd(w, g)
			case w == 0 || g < w:
				w = g
			}
		}
		if w == 0 {
			w = 1
		}
		for i := range bins {
			bins[i].lo, bins[i].hi = bins[i].lo-w/2, bins[i].lo+w/2
		}
	} else if len(xsv) > 0 {
		lo, hi := xsv[0], xsv[0]
		allInt := true
		for _, x := range xsv {
			lo, hi = math.Min(lo, x), math.Max(hi, x)
			allInt = allInt && x == math.Trunc(x)
		}
		width := (hi - lo) / 20
		if allInt && hi-lo <= 60 {
			width = 1
		}
		if width <= 0 {
			width = 1
		}
		n := int(math.Floor((hi-lo)/width)) + 1
		counts := make([]float64, n)
		for _, x := range xsv {
			counts[min(int((x-lo)/width), n-1)]++
		}
		for i, k := range counts {
			if k > 0 {
				b0 := lo + float64(i)*width
				if width == 1 && allInt {
					bins = append(bins, bin{b0 - 0.5, b0 + 0.5, k})
				} else {
					bins = append(bins, bin{b0, b0 + width, k})
				}
			}
		}
	}
	if len(bins) == 0 {
		return `<p class="empty">No rows yet: nothing to draw.</p>`, nil
	}
	var b strings.Builder
	x0, x1, hi := bins[0].lo, bins[0].hi, 0.0
	countsInt, xInt := true, true
	for _, k := range bins {
		x0, x1, hi = math.Min(x0, k.lo), math.Max(x1, k.hi), math.Max(hi, k.n)
		countsInt = countsInt && k.n == math.Trunc(k.n)
		mid := (k.lo + k.hi) / 2
		xInt = xInt && mid == math.Trunc(mid)
	}
	// At least ten bins' width, so a lone bin is a bar, not a wall.
	if w := bins[0].hi - bins[0].lo; x1-x0 < 10*w {
		pad := (10*w - (x1 - x0)) / 2
		x0, x1 = x0-pad, x1+pad
	}
	ys, ticks := yAxis(0, hi, chartH-padBottom, padTop, false, countsInt)
	left, right := leftPad(ticks, ""), float64(chartW-padRight)
	xt := niceTicks(x0, x1, 10, xInt)
	xs := scale{math.Min(x0, xt[0]), math.Max(x1, xt[len(xt)-1]), left + 4, right - 4, false}
	svgOpen(&b, chartH, "histogram")
	yGrid(&b, ys, ticks, left, right, "")
	for _, t := range xt {
		x := xs.at(t)
		fmt.Fprintf(&b, `<line class="axis" x1="%.1f" x2="%.1f" y1="%d" y2="%d"></line>`, x, x, chartH-padBottom, chartH-padBottom+4)
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%d" text-anchor="middle">%s</text>`, x, chartH-padBottom+18, esc(num(t, "")))
	}
	if c.Unit != "" {
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%d" text-anchor="end">%s</text>`, right, chartH-6, esc(c.X+" ("+c.Unit+")"))
	}
	for _, k := range bins {
		xa, xb := xs.at(k.lo), xs.at(k.hi)
		label := num((k.lo+k.hi)/2, c.Unit)
		if k.hi-k.lo != 1 {
			label = num(k.lo, "") + " to " + num(k.hi, c.Unit)
		}
		fmt.Fprintf(&b, `<rect class="bar" x="%.2f" y="%.2f" width="%.2f" height="%.2f" fill="%s"><title>%s: %s</title></rect>`,
			xa+0.5, ys.at(k.n), math.Max(xb-xa-1, 0.5), ys.at(0)-ys.at(k.n), palette[0], esc(label), esc(num(k.n, "")))
	}
	fmt.Fprintf(&b, `<line class="axis" x1="%.1f" x2="%.1f" y1="%d" y2="%d"></line>`, left, right, chartH-padBottom, chartH-padBottom)
	b.WriteString(`</svg>`)
	return template.HTML(b.String()), nil
}
