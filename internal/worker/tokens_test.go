package worker

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hangup-dev/hangup/internal/meetingsim"
	"github.com/hangup-dev/hangup/schemas"
)

// Control tokens from stored credentials, with one and with three workers
// on one durable consumer, for a vendor that keeps every token alive until
// it expires and for one that keeps only the newest token of a meeting:
// tokens expire in the middle of long split chains (a strict vendor, and
// participants who are not online), by their short life and by force, and
// no request may fail for it. The workers share one token per conference,
// so the token calls stay at about one per conference per token life, plus
// one per forced expiry, however many workers there are.
func TestTokensSurviveExpiryAndCompany(t *testing.T) {
	tests := []struct {
		workers  int
		mode     meetingsim.TokenMode
		lifetime time.Duration
	}{
		{1, meetingsim.TokenModeMany, 4 * time.Second},
		{1, meetingsim.TokenModeOneLive, 4 * time.Second},
		{1, meetingsim.TokenModeMany, 30 * time.Minute},
		{1, meetingsim.TokenModeOneLive, 30 * time.Minute},
		{3, meetingsim.TokenModeMany, 4 * time.Second},
		{3, meetingsim.TokenModeOneLive, 4 * time.Second},
		{3, meetingsim.TokenModeMany, 30 * time.Minute},
		{3, meetingsim.TokenModeOneLive, 30 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d workers, %s tokens of %s", tt.workers, tt.mode, tt.lifetime), func(t *testing.T) {
			h := newHarness(t, meetingsim.Config{
				Mode: meetingsim.ModeStrict, TokenMode: tt.mode, TokenLifetime: tt.lifetime,
				Faults: meetingsim.Faults{LatencyBase: 5 * time.Millisecond},
			})
			const conferences, waves, perWave = 4, 12, 6
			confs := make([]string, conferences)
			for i := range confs {
				confs[i] = fmt.Sprintf("conf-%d", i)
				h.meeting(confs[i], participants(confs[i]+"-p", 2*waves*perWave)...)
				h.storeCredentials(confs[i], "pw-"+confs[i])
			}
			for i := range tt.workers {
				h.start(func(c *Config) { withCredentials(c); c.WorkerID = fmt.Sprintf("w%d", i) })
			}

			// Requests arrive in waves; each carries two participants who
			// are online, and every other one someone who is not, so that
			// the strict vendor rejects whole calls and the batches are
			// split into chains of single-ID calls.
			start := time.Now()
			forced := 0
			tick := time.NewTicker(400 * time.Millisecond)
			defer tick.Stop()
			for w := range waves {
				calls := len(h.sim.Calls())
				for _, conf := range confs {
					for r := range perWave {
						n := w*perWave + r
						ids := []string{fmt.Sprintf("%s-p-%d", conf, 2*n+1), fmt.Sprintf("%s-p-%d", conf, 2*n+2)}
						if r%2 == 0 {
							gone := fmt.Sprintf("%s-gone-%d", conf, n)
							ids = append(ids, gone)
							h.neverOnline(conf, gone)
						}
						h.request(fmt.Sprintf("%s-r%d", conf, n), conf, "", ids...)
					}
				}
				if w == waves-3 {
					// Expire every token while the wave's chains run.
					require.Eventually(t, func() bool { return len(h.sim.Calls()) >= calls+2*conferences }, 10*time.Second, time.Millisecond)
					h.sim.ExpireTokens()
					forced++
				}
				<-tick.C
			}
			_, rep := h.audit()
			span := time.Since(start)
			require.Equal(t, conferences*waves*perWave, rep.ByStatus[schemas.StatusSucceeded], "every request succeeds")

			// Renewal comes at four fifths of a token's life.
			lives := int(math.Ceil(span.Seconds() / (0.8 * tt.lifetime.Seconds())))
			bound := lives + forced + 1
			st := h.sim.Stats()
			for _, conf := range confs {
				calls := st.TokenCallsByConference[conf]
				t.Logf("%s: %d token calls in %s (bound %d)", conf, calls, span.Round(time.Millisecond), bound)
				require.LessOrEqual(t, calls, bound, "token calls of %s", conf)
			}
			if tt.mode == meetingsim.TokenModeOneLive {
				require.LessOrEqual(t, st.TokensReplaced, conferences, "workers do not replace each other's tokens (only the token each meeting was set up with)")
			}
		})
	}
}

// refuseEveryToken makes the vendor refuse every hang-up call as if its
// token had expired, while the token API goes on handing out new ones.
var refuseEveryToken = meetingsim.Faults{Errors: []meetingsim.ErrorFault{{Rate: 1, Status: 401, Code: meetingsim.CodeTokenInvalid}}}

// Tokens that the vendor refuses as soon as they are obtained hand the
// requests back for later, with a warning and a metric, instead of failing
// them; once tokens work again, the requests succeed.
func TestFreshTokensRefusedAreHandedBack(t *testing.T) {
	h := newHarness(t, meetingsim.Config{})
	h.meeting("c", "a", "b")
	h.storeCredentials("c", "pw-c")
	h.sim.SetFaults(refuseEveryToken)
	_, reg := h.startWith(func(c *Config) { withCredentials(c); c.DeferInitial = 100 * time.Millisecond })
	h.request("r1", "c", "", "a")
	h.request("r2", "c", "", "b")
	require.Eventually(t, func() bool { return gauge(t, reg, "hangup_token_refusals_total") >= 2 }, 20*time.Second, 20*time.Millisecond)
	require.Positive(t, gauge(t, reg, "hangup_requests_deferred_total"))

	h.sim.SetFaults(meetingsim.Faults{})
	s, rep := h.audit("pw-c")
	require.Equal(t, 2, rep.ByStatus[schemas.StatusSucceeded])
	require.Empty(t, s.DeadLetters)
}

// ... and fail only after --defer-max.
func TestFreshTokensRefusedFailAfterDeferMax(t *testing.T) {
	h := newHarness(t, meetingsim.Config{})
	h.meeting("c", "a")
	h.storeCredentials("c", "pw-c")
	h.sim.SetFaults(refuseEveryToken)
	h.start(func(c *Config) {
		withCredentials(c)
		c.DeferInitial = 100 * time.Millisecond
		c.DeferMax = time.Second
	})
	h.request("r", "c", "", "a")
	s, rep := h.audit("pw-c")
	require.Equal(t, 1, rep.ByStatus[schemas.StatusFailed])
	require.Len(t, s.DeadLetters, 1)
	dl := s.DeadLetters[0]
	require.Equal(t, schemas.ReasonRetriesExhausted, dl.Reason)
	require.Contains(t, dl.Error, "refused freshly obtained control tokens")
	require.Contains(t, dl.Error, "given up after the 1s limit")
	require.Empty(t, h.sim.Disconnects())
}
