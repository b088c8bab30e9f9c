package dashboard

import (
	"fmt"
	"html/template"
	"strings"

	"github.com/clickgate/clickgate/counter"
)

// Charts are SVG drawn here: a page shows them without any script, and a
// test reads their figures from the markup (each bar segment carries a
// <title> such as "2026-05-12 qualified: 3").

// Series is one stacked layer of a chart: a name, a colour and a value per
// day.
type Series struct {
	Name   string
	Color  string
	Values []int64
}

// Chart is a stacked bar chart by day.
type Chart struct {
	Title  string
	Days   []counter.Day
	Series []Series
}

// Chart geometry, in SVG user units.
const (
	chartW, chartH            = 720, 260
	padLeft, padRight         = 48, 12
	padTop, padBottom         = 16, 64
	maxChartDays              = 92
	legendY                   = chartH - 14
	legendStep                = 110
	tickCount                 = 4
	minBarGap         float64 = 1
	maxBarW           float64 = 48
)

// reasonColors are the chart colours of the reasons, by counter.Reason.
var reasonColors = [counter.NumReasons]string{
	counter.Qualified:   "#2e7d32",
	counter.Duplicate:   "#90a4ae",
	counter.Uncounted:   "#6d4c41",
	counter.Bot:         "#c62828",
	counter.Preview:     "#7e57c2",
	counter.Prefetch:    "#b0bec5",
	counter.Velocity:    "#ef6c00",
	counter.OutOfWindow: "#5c6bc0",
	counter.Inactive:    "#8d6e63",
	counter.Signup:      "#0277bd",
	counter.Budget:      "#f9a825",
}

// dayRange returns every day from the first to the last of days (sorted),
// at most maxChartDays, the latest kept.
func dayRange(days []counter.DayCounts) []counter.Day {
	if len(days) == 0 {
		return nil
	}
	first, last := days[0].Day, days[len(days)-1].Day
	if int(last-first)+1 > maxChartDays {
		first = last - maxChartDays + 1
	}
	out := make([]counter.Day, 0, last-first+1)
	for d := first; d <= last; d++ {
		out = append(out, d)
	}
	return out
}

// reasonChart returns a chart of days by reason, one series for each
// reason with any count (clicks only: signups are not clicks).
func reasonChart(title string, days []counter.DayCounts) Chart {
	ch := Chart{Title: title, Days: dayRange(days)}
	for r := range counter.NumReasons {
		if r == counter.Signup {
			continue
		}
		if s, ok := seriesOf(r, ch.Days, days); ok {
			ch.Series = append(ch.Series, s)
		}
	}
	return ch
}

// seriesOf returns reason r's values on each of chartDays, and whether
// any is above 0.
func seriesOf(r counter.Reason, chartDays []counter.Day, days []counter.DayCounts) (Series, bool) {
	s := Series{Name: r.String(), Color: reasonColors[r], Values: make([]int64, len(chartDays))}
	any := false
	for _, d := range days {
		if len(chartDays) == 0 || d.Day < chartDays[0] {
			continue
		}
		i := int(d.Day - chartDays[0])
		if i < len(s.Values) && d.Counts[r] > 0 {
			s.Values[i] += d.Counts[r]
			any = true
		}
	}
	return s, any
}

// SVG draws the chart. Every text in it is escaped.
func (c Chart) SVG() template.HTML {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" role="img" aria-label="%s">`,
		chartW, chartH, esc(c.Title))
	fmt.Fprintf(&b, `<title>%s</title>`, esc(c.Title))
	var max int64
	for i := range c.Days {
		var sum int64
		for _, s := range c.Series {
			sum += s.Values[i]
		}
		max = maxOf(max, sum)
	}
	plotW := float64(chartW - padLeft - padRight)
	plotH := float64(chartH - padTop - padBottom)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#555"/>`, padLeft, chartH-padBottom, chartW-padRight, chartH-padBottom)
	if len(c.Days) == 0 || max == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="#555">No clicks yet</text></svg>`, chartW/2, chartH/2)
		return template.HTML(b.String())
	}
	top := axisTop(max)
	for i := 0; i <= tickCount; i++ {
		v := top * int64(i) / tickCount
		y := float64(chartH-padBottom) - plotH*float64(v)/float64(top)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`, padLeft, y, chartW-padRight, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" font-size="11" fill="#555">%d</text>`, padLeft-6, y+4, v)
	}
	slot := plotW / float64(len(c.Days))
	barW := slot * 0.8
	if slot-barW < minBarGap {
		barW = slot - minBarGap
	}
	barW = min(barW, maxBarW) // a few days' bars stay bars
	labelEvery := (len(c.Days) + 9) / 10
	for i, d := range c.Days {
		x := float64(padLeft) + slot*float64(i) + (slot-barW)/2
		y := float64(chartH - padBottom)
		for _, s := range c.Series {
			v := s.Values[i]
			if v == 0 {
				continue
			}
			h := plotH * float64(v) / float64(top)
			y -= h
			fmt.Fprintf(&b, `<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" data-series="%s" data-day="%s" data-value="%d"><title>%s %s: %d</title></rect>`,
				x, y, barW, h, esc(s.Color), esc(s.Name), d, v, d, esc(s.Name), v)
		}
		if i%labelEvery == 0 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" font-size="11" fill="#555">%s</text>`,
				x+barW/2, chartH-padBottom+16, d.Time().Format("Jan 2"))
		}
	}
	for i, s := range c.Series {
		x := padLeft + i*legendStep
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d" font-size="12" fill="#222">%s</text>`,
			x, legendY-9, esc(s.Color), x+14, legendY, esc(s.Name))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func esc(s string) string { return template.HTMLEscapeString(s) }

func maxOf(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// axisTop returns the top of the value axis for a largest value v > 0:
// tickCount steps of a round size (1, 2, 2.5 or 5 × 10^k, whole), so that
// every tick is a round number.
func axisTop(v int64) int64 {
	for p := int64(1); p <= 1e17; p *= 10 {
		for _, step := range []int64{p, 2 * p, 25 * p / 10, 5 * p} {
			if step*tickCount >= v {
				return step * tickCount
			}
		}
	}
	return v
}
