package bench

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// AuditRow sets what one creator should have been counted beside what
// clickgate counted during the run.
type AuditRow struct {
	Campaign string   `json:"campaign"`
	Creator  string   `json:"creator"`
	Expected Expected `json:"expected"`
	Got      Counts   `json:"got"`
	// Allowed is how many qualified visits the Bloom filters may have
	// turned into duplicates (false positives).
	Allowed  int64    `json:"allowed_missing"`
	Problems []string `json:"problems,omitempty"`
}

// Audit is the comparison of a run with clickgate's counters.
type Audit struct {
	// FalsePositiveRate is the Bloom filters' rate at capacity; each
	// visitor passes up to two (this node's and the store's).
	FalsePositiveRate float64    `json:"false_positive_rate"`
	Rows              []AuditRow `json:"creators"`
	Expected          Expected   `json:"expected_total"`
	Got               Counts     `json:"got_total"`
	PeopleSent        int64      `json:"people_sent"`
	NotRedirected     int64      `json:"people_not_redirected"`
	Problems          []string   `json:"problems,omitempty"`
}

// OK reports whether every qualified visit was counted exactly once, within
// the Bloom bound, and every person was redirected.
func (a *Audit) OK() bool { return len(a.Problems) == 0 }

// AllowedMissing returns how many of n new visitors two Bloom filters with
// false-positive rate p may take for known, at a one-in-a-million chance of
// exceeding it: the 1e-6 upper quantile of Poisson(2pn). Filters filled
// below capacity do much better; this bound assumes they are full.
func AllowedMissing(n int64, p float64) int64 {
	lambda := 2 * p * float64(n)
	if lambda == 0 {
		return 0
	}
	// Walk the Poisson probabilities until the tail is below 1e-6.
	term := math.Exp(-lambda)
	cdf := term
	k := int64(0)
	for 1-cdf > 1e-6 && k < n {
		k++
		term *= lambda / float64(k)
		cdf += term
	}
	return k
}

// NewAudit compares res with the counters read before and after the run.
func NewAudit(m Model, fp float64, res *Result, before, after []Counts) *Audit {
	a := &Audit{FalsePositiveRate: fp}
	a.PeopleSent, a.NotRedirected = res.People()
	if a.NotRedirected > 0 {
		p := res.Kinds[Person.String()]
		a.Problems = append(a.Problems, fmt.Sprintf("%d people were not redirected (%d unanswered, %d other status)", a.NotRedirected, p.Errors, p.Unexpected))
	}
	for k := range res.Creator {
		e, got := res.Creator[k], after[k].sub(before[k])
		row := AuditRow{Campaign: CampaignID(k / m.CreatorsPerCampaign), Creator: CreatorID(k % m.CreatorsPerCampaign),
			Expected: e, Got: got, Allowed: AllowedMissing(e.Qualified, fp)}
		problem := func(format string, args ...any) { row.Problems = append(row.Problems, fmt.Sprintf(format, args...)) }
		switch missing := e.Qualified - got.Qualified; {
		case missing < 0:
			problem("%d qualified visits counted that were not sent", -missing)
		case missing > row.Allowed:
			problem("%d qualified visits missing; the Bloom bound allows %d", missing, row.Allowed)
		}
		// A false positive moves a visit from qualified to duplicates:
		// together they are exact.
		if e.Unsure == 0 {
			if w, g := e.Qualified+e.Duplicates, got.Qualified+got.Duplicates; w != g {
				problem("qualified+duplicates %d, want %d", g, w)
			}
			if got.Bots != e.Bots || got.Previews != e.Previews || got.Prefetches != e.Prefetches {
				problem("bots/previews/prefetches %d/%d/%d, want %d/%d/%d", got.Bots, got.Previews, got.Prefetches, e.Bots, e.Previews, e.Prefetches)
			}
		}
		if got.Velocity > 0 {
			problem("%d clicks flagged velocity: the model sends more clicks per address than --velocity-max allows", got.Velocity)
		}
		if got.Budget > 0 {
			problem("%d visits over a daily budget: the model puts more people in one /24 than clickgate's --budget-block allows", got.Budget)
		}
		if got.Uncounted > 0 {
			problem("%d visits uncounted", got.Uncounted)
		}
		if got.OutOfWindow+got.Inactive > 0 {
			problem("%d clicks out of window or inactive: seed the campaigns again", got.OutOfWindow+got.Inactive)
		}
		if len(row.Problems) > 0 {
			a.Problems = append(a.Problems, fmt.Sprintf("%s/%s: %s", row.Campaign, row.Creator, strings.Join(row.Problems, "; ")))
		}
		a.Expected.add(&e)
		a.Got = a.Got.add(got)
		a.Rows = append(a.Rows, row)
	}
	return a
}

func (c Counts) add(o Counts) Counts {
	return Counts{c.Clicks + o.Clicks, c.Qualified + o.Qualified, c.Duplicates + o.Duplicates, c.Bots + o.Bots,
		c.Previews + o.Previews, c.Prefetches + o.Prefetches, c.Velocity + o.Velocity, c.OutOfWindow + o.OutOfWindow,
		c.Inactive + o.Inactive, c.Uncounted + o.Uncounted, c.Budget + o.Budget}
}

// Write prints the audit: totals, then the creators with problems (all of
// them with verbose).
func (a *Audit) Write(w io.Writer, verbose bool) {
	fmt.Fprintf(w, "audit: Bloom false-positive rate %g per filter, two filters per visitor: a creator with n new visitors may miss at most the 1e-6 quantile of Poisson(2·%g·n) qualified visits, and never gain one\n", a.FalsePositiveRate, a.FalsePositiveRate)
	fmt.Fprintf(w, "%-24s %12s %12s %12s %12s %12s\n", "", "qualified", "duplicates", "bots", "previews", "prefetches")
	fmt.Fprintf(w, "%-24s %12d %12d %12d %12d %12d\n", "expected (sent)", a.Expected.Qualified, a.Expected.Duplicates, a.Expected.Bots, a.Expected.Previews, a.Expected.Prefetches)
	fmt.Fprintf(w, "%-24s %12d %12d %12d %12d %12d\n", "counted by clickgate", a.Got.Qualified, a.Got.Duplicates, a.Got.Bots, a.Got.Previews, a.Got.Prefetches)
	for _, r := range a.Rows {
		if !verbose && len(r.Problems) == 0 {
			continue
		}
		fmt.Fprintf(w, "%-24s %5d/%-6d %5d/%-6d %5d/%-6d %5d/%-6d %5d/%-6d %s\n", r.Campaign+"/"+r.Creator,
			r.Got.Qualified, r.Expected.Qualified, r.Got.Duplicates, r.Expected.Duplicates, r.Got.Bots, r.Expected.Bots,
			r.Got.Previews, r.Expected.Previews, r.Got.Prefetches, r.Expected.Prefetches, strings.Join(r.Problems, "; "))
	}
	fmt.Fprintf(w, "people: %d clicks sent, %d not redirected\n", a.PeopleSent, a.NotRedirected)
	if a.OK() {
		fmt.Fprintf(w, "audit passed: every qualified visit counted exactly once (missing %d, bound per creator stated above), every person redirected\n", a.Expected.Qualified-a.Got.Qualified)
		return
	}
	fmt.Fprintf(w, "audit FAILED (%d problems):\n", len(a.Problems))
	for _, p := range a.Problems {
		fmt.Fprintf(w, "  %s\n", p)
	}
}
