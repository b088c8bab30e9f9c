package redirect

import (
	"sync/atomic"
	"time"
)

// ProbeOptions configure Probes.
type ProbeOptions struct {
	// Max is the number of unknown codes one client network may ask for
	// per Window. At most 65534. default: 100
	Max int
	// Window is the sliding window they are counted over. default: 10m
	Window time.Duration
}

const (
	// DefaultProbeMax is the default ProbeOptions.Max.
	DefaultProbeMax = 100
	// DefaultProbeWindow is the default ProbeOptions.Window.
	DefaultProbeWindow = 10 * time.Minute
)

// Probes slows down the search for codes that exist. Every unknown code a
// client network (NetworkKey) asks for is counted in a Velocity sketch; once
// the network is over Max within the Window, every code it asks for gets the
// same 429, known or not, until it is back under. Answering known codes
// as usual would leave the 302-or-not difference as the oracle, and the
// limit would slow nothing.
//
// The price is paid by people who share the prober's address (a carrier
// NAT): they are not redirected while it lasts. A person who mistypes a
// link asks for a few unknown codes, far from the default 100 per 10
// minutes. Nothing is looked up in a store, and it is safe for concurrent
// use.
type Probes struct {
	v *Velocity
	// span is how long after its last flag a network may still be over the
	// limit: its clicks are kept at most Window + Window/7 (Velocity), and
	// a Window of margin covers a flag time overwritten by an older one.
	span int64
	// flagged is when a network last went over the limit, in Unix
	// nanoseconds; 0 when none has.
	flagged atomic.Int64
}

// NewProbes returns Probes with o's defaults filled in. It panics on a Max
// above 65534 or a negative Window, as NewVelocity does.
func NewProbes(o ProbeOptions) *Probes {
	if o.Max <= 0 {
		o.Max = DefaultProbeMax
	}
	if o.Window == 0 {
		o.Window = DefaultProbeWindow
	}
	return &Probes{v: NewVelocity(VelocityOptions{Max: o.Max, Window: o.Window}), span: 2 * int64(o.Window)}
}

// Unknown records that the network k asked for an unknown code at now and
// reports whether it is still within the limit.
func (p *Probes) Unknown(k uint64, now time.Time) bool {
	if p.v.Hit(k, now) {
		return true
	}
	p.flagged.Store(now.UnixNano())
	return false
}

// Allows reports whether the network k may look codes up at now. While no
// network has gone over the limit within the last span, which is always
// outside an attack, it costs one atomic load and no sketch lookup.
func (p *Probes) Allows(k uint64, now time.Time) bool {
	if f := p.flagged.Load(); f == 0 || now.UnixNano()-f > p.span {
		return true
	}
	return p.v.Allows(k, now)
}
