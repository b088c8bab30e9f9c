package redirect

import (
	"context"
	"testing"
	"time"
)

func TestPaceWait(t *testing.T) {
	for _, tc := range []struct {
		step, want time.Duration
	}{
		{0, 0},
		{time.Millisecond, 19 * time.Millisecond},
		{5 * time.Millisecond, 95 * time.Millisecond},
		// From here the slot bounds the wait: a step a slot.
		{6 * time.Millisecond, 94 * time.Millisecond},
		{40 * time.Millisecond, 60 * time.Millisecond},
		{PaceSlot, 0},
		{time.Second, 0},
	} {
		if got := paceWait(tc.step); got != tc.want {
			t.Errorf("paceWait(%s) = %s; want %s", tc.step, got, tc.want)
		}
	}
}

func TestPacerWaitEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p := NewPacer()
	time.Sleep(time.Millisecond) // a step, so that it would wait
	if p.Wait(ctx) {
		t.Fatal("Wait waited with its context done")
	}
}
