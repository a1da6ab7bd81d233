package dispatcher

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// While the breaker is open, Capacity lets one request in per probe, not
// one per goroutine that asks.
func TestCapacityLetsOneRequestInPerProbeWhateverTheCallers(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	d, err := New(Config{WorkerID: "w", BreakerThreshold: 1, Now: clk.now}, Deps{API: &scriptVendor{}, Publisher: nopPublisher{}})
	require.NoError(t, err)
	d.breaker.record(true)
	require.True(t, d.breaker.isOpen())
	clk.advance(time.Second) // the probe is due; the clock stands still from here

	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	const callers = 8
	got := make(chan int, callers) // one per caller, never blocking it
	for i := 0; i < callers; i++ {
		go func() {
			n, err := d.Capacity(ctx)
			if err != nil {
				n = 0
			}
			got <- n
		}()
	}
	admitted := 0
	for i := 0; i < callers; i++ {
		admitted += <-got
	}
	require.Equal(t, 1, admitted)
	require.NoError(t, d.Stop(context.Background()))
}
