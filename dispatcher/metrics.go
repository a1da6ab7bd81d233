package dispatcher

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the dispatcher's Prometheus collectors. None of them carries
// a conference ID, a participant ID or a token as a label.
type metrics struct {
	requests     *prometheus.CounterVec
	deadLetters  *prometheus.CounterVec
	calls        *prometheus.CounterVec
	batchSize    prometheus.Histogram
	callDuration prometheus.Histogram
	latency      prometheus.Histogram
	held         prometheus.Gauge
	deferred     prometheus.Counter
	breakerOpen  prometheus.Gauge
	rateLimit    prometheus.Gauge
	// concurrencyShare is this worker's share of APIConcurrency.
	concurrencyShare prometheus.Gauge
	remembered       prometheus.Counter
	// tokenRefusals counts call chains handed back because fresh tokens
	// were refused on first use again and again.
	tokenRefusals prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hangup_requests_completed_total",
			Help: "Requests whose outcome was published, by status.",
		}, []string{"status"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hangup_dispatcher_dead_letters_total",
			Help: "Dead letters of valid requests, by reason.",
		}, []string{"reason"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hangup_api_calls_total",
			Help: "Hang-up API calls (each attempt), by result class.",
		}, []string{"result"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hangup_batch_size",
			Help:    "Participant IDs per hang-up call chain.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500},
		}),
		callDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hangup_api_call_duration_seconds",
			Help:    "Duration of one hang-up API call attempt.",
			Buckets: prometheus.DefBuckets,
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hangup_request_latency_seconds",
			Help:    "Time from a request's arrival in the stream to its outcome.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}),
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hangup_requests_held",
			Help: "Requests held by the dispatcher, from hand-over to ack.",
		}),
		deferred: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hangup_requests_deferred_total",
			Help: "Requests handed back with a delay because the meeting was not ready, the API asked to wait, or fresh control tokens were refused.",
		}),
		breakerOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hangup_breaker_open",
			Help: "1 while the circuit breaker holds API calls back and pulling is paused.",
		}),
		rateLimit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hangup_api_rate_limit",
			Help: "Current limit on API calls per second of this worker (0: none): its share of the deployment's APIRate, lowered by flow control here or at another worker.",
		}),
		concurrencyShare: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hangup_api_concurrency_share",
			Help: "API calls this worker may have in flight: its share of the deployment's APIConcurrency.",
		}),
		remembered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hangup_batches_answered_from_memory_total",
			Help: "Batches decided without a call because their meeting was recently found gone or not ready.",
		}),
		tokenRefusals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hangup_token_refusals_total",
			Help: "Call chains handed back because the vendor refused freshly obtained control tokens on first use again and again.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.deadLetters, m.calls, m.batchSize, m.callDuration, m.latency, m.held, m.deferred, m.breakerOpen, m.rateLimit, m.concurrencyShare, m.remembered, m.tokenRefusals} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
