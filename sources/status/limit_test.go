package status

import (
	"context"
	"testing"
	"time"
)

// TestLimiterRate holds NewLimiter to the politeness promise on a clock of
// its own (no wall-clock measurement): with burst 1, requests asking back
// to back are granted at Headroom × R, and no one-second window holds more
// than R of them. BenchmarkPoliteness (sources/status/providers) measures
// the rate the whole provider stack achieves against a slow server.
func TestLimiterRate(t *testing.T) {
	start := time.Date(2026, 1, 1, 2, 0, 0, 0, time.UTC)
	for _, r := range []float64{0.5, 2, 5, 20, 50, 200} {
		lim := NewLimiter(r, 1)
		n := max(10, int(3*r)+1)
		grants := make([]time.Time, 0, n)
		at := start
		for range n {
			res := lim.ReserveN(at, 1)
			if !res.OK() {
				t.Fatalf("R=%v: reservation refused", r)
			}
			at = at.Add(res.DelayFrom(at))
			grants = append(grants, at)
		}
		achieved := float64(n-1) / grants[n-1].Sub(grants[0]).Seconds()
		if want := Headroom * r; achieved < want*0.999 || achieved > want*1.001 {
			t.Errorf("R=%v: achieved %.4f requests/s, want %.4f (%.0f%% of R)", r, achieved, want, 100*Headroom)
		}
		most, j := 0, 0
		for i := range grants {
			for j < len(grants) && grants[j].Sub(grants[i]) < time.Second {
				j++
			}
			most = max(most, j-i)
		}
		if float64(most) > max(r, 1) {
			t.Errorf("R=%v: %d requests granted within one second", r, most)
		}
	}
	// No rate means no wait.
	lim := NewLimiter(0, 0)
	for range 1000 {
		if d := lim.ReserveN(start, 1).DelayFrom(start); d != 0 {
			t.Fatalf("unlimited limiter waits %v", d)
		}
	}
}

// TestLimiterGuardsEverySecond: the bucket alone lets a burst through on
// top of its rate (as it lets late waiters bunch with the ones after
// them); the guard still holds every one-second window, by the clock at
// each grant, to R.
func TestLimiterGuardsEverySecond(t *testing.T) {
	const r = 20
	lim := NewLimiter(r, r) // a burst of R, then R a second: 2R in the first second without the guard
	ctx := context.Background()
	var grants []time.Time
	for range 2*r + 5 {
		if err := lim.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		grants = append(grants, time.Now())
	}
	most, j := 0, 0
	for i := range grants {
		for j < len(grants) && grants[j].Sub(grants[i]) < time.Second {
			j++
		}
		most = max(most, j-i)
	}
	if most > r {
		t.Errorf("%d grants within one second, limit %d", most, r)
	}
	// A canceled wait returns at once.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := lim.Wait(cctx); err == nil {
		t.Error("Wait with a canceled context succeeded")
	}
}
