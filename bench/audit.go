package bench

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/clickgate/clickgate/counter"
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

// FraudAudit is what one pattern of fraud was paid in one campaign, beside
// the most the budgets allow for what it sent.
type FraudAudit struct {
	Campaign string       `json:"campaign"`
	Pattern  FraudPattern `json:"pattern"`
	Attacks  int          `json:"attacks"` // one /24 each
	Clicks   int64        `json:"clicks"`  // sent
	Got      Counts       `json:"got"`     // its fraudsters' counters
	Bound    int64        `json:"bound"`   // the most it may be paid
}

// Audit is the comparison of a run with clickgate's counters.
type Audit struct {
	Limits Limits     `json:"limits"`
	Rows   []AuditRow `json:"creators"`
	// Expected and Got are the honest creators' totals.
	Expected      Expected     `json:"expected_total"`
	Got           Counts       `json:"got_total"`
	Fraud         []FraudAudit `json:"fraud,omitempty"`
	PeopleSent    int64        `json:"people_sent"`
	NotRedirected int64        `json:"people_not_redirected"`
	Problems      []string     `json:"problems,omitempty"`
}

// Limits are the settings of the clickgate under audit that bound what it
// counts.
type Limits struct {
	// FP is the Bloom filters' false-positive rate at capacity
	// (--dedupe-fp); each visitor passes up to two filters.
	FP float64 `json:"false_positive_rate"`
	// BudgetNetwork and BudgetBlock are --budget-network and
	// --budget-block, qualified visits per network and per /24 per
	// campaign per day; 0: none.
	BudgetNetwork int `json:"budget_network"`
	BudgetBlock   int `json:"budget_block"`
}

// DefaultLimits are clickgate's defaults.
func DefaultLimits() Limits {
	return Limits{FP: 0.001, BudgetNetwork: counter.DefaultBudgetNetwork, BudgetBlock: counter.DefaultBudgetBlock}
}

// OK reports whether every honest visitor was counted exactly once, within
// the Bloom bound, every fraudster's click was counted once and paid
// within the budgets, and everyone was redirected.
func (a *Audit) OK() bool { return len(a.Problems) == 0 }

// PaidFraud returns what the fraudsters were paid and the most the budgets
// allowed, over all campaigns and patterns.
func (a *Audit) PaidFraud() (paid, bound, clicks int64) {
	for _, f := range a.Fraud {
		paid, bound, clicks = paid+f.Got.Qualified, bound+f.Bound, clicks+f.Clicks
	}
	return paid, bound, clicks
}

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

// NewAudit compares res with the counters read before and after the run,
// for a clickgate with the default budgets and false-positive rate fp.
func NewAudit(m Model, fp float64, res *Result, before, after []Counts) *Audit {
	l := DefaultLimits()
	l.FP = fp
	return l.Audit(m, res, before, after)
}

// Audit compares res with the counters read before and after the run, for
// a clickgate with limits l.
func (l Limits) Audit(m Model, res *Result, before, after []Counts) *Audit {
	a := &Audit{Limits: l}
	a.PeopleSent, a.NotRedirected = res.People()
	if a.NotRedirected > 0 {
		p := res.Kinds[Person.String()]
		a.Problems = append(a.Problems, fmt.Sprintf("%d people were not redirected (%d unanswered, %d other status)", a.NotRedirected, p.Errors, p.Unexpected))
	}
	if f := res.Kinds[Fraud.String()]; f.Sent > f.OK {
		a.Problems = append(a.Problems, fmt.Sprintf("%d fraudsters' clicks were not redirected (%d unanswered, %d other status): past a budget, a click is redirected and not paid", f.Sent-f.OK, f.Errors, f.Unexpected))
	}
	fraud := make([]FraudAudit, m.Campaigns*int(numPatterns))
	for i := range fraud {
		fraud[i].Campaign, fraud[i].Pattern = CampaignID(i/int(numPatterns)), FraudPattern(i%int(numPatterns))
	}
	// The budgets are per /24: the sessions of an attack's sweep add up.
	for _, b := range MergeFraud(res.Fraud) {
		f := &fraud[b.Campaign*int(numPatterns)+int(b.Pattern)]
		f.Attacks++
		f.Bound += b.Bound(l.BudgetNetwork, l.BudgetBlock)
		for _, n := range b.Sent {
			f.Clicks += n
		}
	}
	for k := range res.Creator {
		e, got := res.Creator[k], after[k].sub(before[k])
		c := k / m.perCampaign()
		row := AuditRow{Campaign: CampaignID(c), Creator: m.CreatorID(k), Expected: e, Got: got}
		problem := func(format string, args ...any) { row.Problems = append(row.Problems, fmt.Sprintf(format, args...)) }
		if m.Fraudster(k) {
			f := &fraud[c*int(numPatterns)+int(fraudsterPattern[k%m.perCampaign()-m.CreatorsPerCampaign])]
			f.Got = f.Got.add(got)
			// Every click of a fraudster's browser is counted once: paid,
			// or a duplicate, or past velocity or a budget.
			if n := got.Qualified + got.Duplicates + got.Velocity + got.Budget; e.Unsure == 0 && n != e.Fraud {
				problem("%d fraudsters' clicks counted, want %d", n, e.Fraud)
			}
			if got.Bots+got.Previews+got.Prefetches > 0 {
				problem("fraudsters' browsers counted as %d bots, %d previews, %d prefetches", got.Bots, got.Previews, got.Prefetches)
			}
		} else {
			row.Allowed = AllowedMissing(e.Qualified, l.FP)
			a.honest(&row)
			a.Expected.add(&e)
			a.Got = a.Got.add(got)
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
		a.Rows = append(a.Rows, row)
	}
	for _, f := range fraud {
		if f.Got.Qualified > f.Bound {
			a.Problems = append(a.Problems, fmt.Sprintf("%s, %s: %d fraudulent visits paid; for the %d clicks from its %d /24s the budgets (%s) allow %d",
				f.Campaign, f.Pattern, f.Got.Qualified, f.Clicks, f.Attacks, l.budgets(), f.Bound))
		}
		if f.Attacks > 0 || f.Got.Clicks > 0 {
			a.Fraud = append(a.Fraud, f)
		}
	}
	return a
}

// honest checks an honest creator's row: every visitor paid exactly once,
// within the Bloom bound.
func (a *Audit) honest(row *AuditRow) {
	e, got := &row.Expected, &row.Got
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
		problem("%d clicks flagged velocity: the model sends more clicks per address than the edge's guard (4 × --velocity-max) allows, or more people than --velocity-max", got.Velocity)
	}
	if got.Budget > 0 {
		problem("%d visits over a daily budget: the model puts more people in one /24 than clickgate's --budget-block allows (clickbench --addresses-per-block)", got.Budget)
	}
}

func (l Limits) budgets() string {
	f := func(n int) string {
		if n == 0 {
			return "none"
		}
		return strconv.Itoa(n)
	}
	return fmt.Sprintf("%s per network, %s per /24", f(l.BudgetNetwork), f(l.BudgetBlock))
}

func (c Counts) add(o Counts) Counts {
	return Counts{c.Clicks + o.Clicks, c.Qualified + o.Qualified, c.Duplicates + o.Duplicates, c.Bots + o.Bots,
		c.Previews + o.Previews, c.Prefetches + o.Prefetches, c.Velocity + o.Velocity, c.OutOfWindow + o.OutOfWindow,
		c.Inactive + o.Inactive, c.Uncounted + o.Uncounted, c.Budget + o.Budget}
}

// Write prints the audit: totals, then the creators with problems (all of
// them with verbose).
func (a *Audit) Write(w io.Writer, verbose bool) {
	fmt.Fprintf(w, "audit: Bloom false-positive rate %g per filter, two filters per visitor: an honest creator with n new visitors may miss at most the 1e-6 quantile of Poisson(2·%g·n) qualified visits, and never gain one; budgets %s\n",
		a.Limits.FP, a.Limits.FP, a.Limits.budgets())
	fmt.Fprintf(w, "%-24s %12s %12s %12s %12s %12s\n", "honest creators", "qualified", "duplicates", "bots", "previews", "prefetches")
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
	for _, f := range a.Fraud {
		fmt.Fprintf(w, "fraud, %s, %s: %d /24s, %d clicks: %d paid (at most %d), %d over budget, %d velocity, %d duplicates\n",
			f.Campaign, f.Pattern, f.Attacks, f.Clicks, f.Got.Qualified, f.Bound, f.Got.Budget, f.Got.Velocity, f.Got.Duplicates)
	}
	fmt.Fprintf(w, "people: %d clicks sent, %d not redirected\n", a.PeopleSent, a.NotRedirected)
	if a.OK() {
		paid, bound, _ := a.PaidFraud()
		fmt.Fprintf(w, "audit passed: every honest visitor counted exactly once (missing %d, bound per creator stated above), fraud paid %d of at most %d, everyone redirected\n",
			a.Expected.Qualified-a.Got.Qualified, paid, bound)
		return
	}
	fmt.Fprintf(w, "audit FAILED (%d problems):\n", len(a.Problems))
	for _, p := range a.Problems {
		fmt.Fprintf(w, "  %s\n", p)
	}
}
