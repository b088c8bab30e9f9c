package dashboard

import (
	"encoding/xml"
	"strings"
	"testing"

	"github.com/clickgate/clickgate/counter"
)

func TestAxisTop(t *testing.T) {
	f := func(v, want int64) {
		t.Helper()
		if got := axisTop(v); got != want {
			t.Fatalf("unexpected axis top for %d; got %d; want %d", v, got, want)
		}
	}
	f(1, 4)
	f(4, 4)
	f(5, 8)
	f(9, 20)
	f(1000, 1000)
	f(1001, 2000)
	f(2100, 4000)
	f(130, 200)
}

func TestChartSVG(t *testing.T) {
	var a, b counter.Counts
	a[counter.Qualified], a[counter.Bot], a[counter.Signup] = 3, 2, 1
	b[counter.Duplicate] = 4
	days := []counter.DayCounts{{Day: 20000, Counts: a}, {Day: 20002, Counts: b}}
	svg := string(reasonChart(`clicks of "<b>"`, days).SVG())
	if err := xml.Unmarshal([]byte(svg), new(struct{})); err != nil {
		t.Fatalf("the chart is not well-formed XML: %v\n%s", err, svg)
	}
	for _, want := range []string{"<title>2024-10-04 qualified: 3</title>", "<title>2024-10-04 bots: 2</title>",
		"<title>2024-10-06 duplicates: 4</title>", "&lt;b&gt;"} {
		if !strings.Contains(svg, want) {
			t.Fatalf("chart has no %q:\n%s", want, svg)
		}
	}
	if strings.Contains(svg, "signups") || strings.Contains(svg, "<b>") {
		t.Fatalf("chart shows signups as clicks, or an unescaped title:\n%s", svg)
	}
	// The day between has no bar but its slot: 3 slots, 3 bars.
	if n := strings.Count(svg, `class="bar"`); n != 3 {
		t.Fatalf("unexpected bar segments; got %d; want 3", n)
	}
	empty := string(reasonChart("none", nil).SVG())
	if !strings.Contains(empty, "No clicks yet") {
		t.Fatalf("an empty chart says nothing:\n%s", empty)
	}
}
