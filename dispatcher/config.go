package dispatcher

import (
	"errors"
	"fmt"
	"time"
)

// Config tunes batching, concurrency and retries.
type Config struct {
	// MaxBatch is the most distinct participant IDs one hang-up call
	// carries. Defaults to 100.
	MaxBatch int
	// Linger is how long a conference's first pending ID waits for others
	// before its batch is sent. Defaults to 50ms.
	Linger time.Duration
	// APIConcurrency is the most hang-up calls in flight over all
	// conferences and all the workers of a deployment. The live workers
	// share it equally (see Dispatcher.SetShare): each may have
	// APIConcurrency/members calls in flight, rounded down so that the sum
	// never exceeds it, and at least 1, so that with more workers than
	// calls the deployment may have one call per worker in flight. With one
	// worker, or until SetShare is first called, the worker has all of it.
	// Defaults to 32.
	APIConcurrency int
	// WorkerAPIConcurrency caps the calls this worker has in flight,
	// whatever its share of APIConcurrency; 0 means no cap beyond the share.
	// Defaults to 0.
	WorkerAPIConcurrency int
	// ConferenceCalls is the most call chains in flight for one
	// conference. The first may carry any batch that is due; the others
	// start only with a full batch (MaxBatch IDs), and only once a chain of
	// the conference came back with answers about its participants (not
	// "meeting gone" or "not ready"), so that a conference
	// with a backlog is not served one call at a time while a partial batch
	// still waits for the call in flight and fills up. 1 keeps one call per
	// conference. Defaults to 4.
	ConferenceCalls int
	// MaxInFlight is the most requests held at once, from Submit until their
	// outcome is published and acked; Submit blocks beyond it. Defaults to
	// 1000.
	MaxInFlight int
	// RetryInitial is the first retry interval. Defaults to 200ms.
	RetryInitial time.Duration
	// RetryMaxInterval caps the retry interval. Defaults to 10s.
	RetryMaxInterval time.Duration
	// RetryMaxElapsed is the retry budget of one call, after which it fails
	// with retries_exhausted. Defaults to 2m.
	RetryMaxElapsed time.Duration
	// KeepAlive is how often every held message is marked in progress so
	// that the server does not redeliver it. Keep it well below the
	// consumer's AckWait. Defaults to 10s.
	KeepAlive time.Duration
	// PublishTimeout bounds one publish of an outcome and one ack. Defaults
	// to 10s.
	PublishTimeout time.Duration
	// APIRate is the most hang-up calls per second over all conferences
	// and all the workers of a deployment; 0 means no limit. The live
	// workers share it equally (see Dispatcher.SetShare): each may make
	// APIRate/members calls per second. With one worker, or until SetShare
	// is first called, the worker has all of it. Flow control from the
	// vendor lowers the rate below the share for a while. Defaults to 0.
	APIRate float64
	// WorkerAPIRate caps the calls per second of this worker, whatever its
	// share of APIRate, and applies alone when APIRate is 0; 0 means no cap
	// beyond the share. Defaults to 0.
	WorkerAPIRate float64
	// BreakerThreshold is how many consecutive outage answers (no answer,
	// timeouts, HTTP 5xx) open the circuit breaker, which holds calls back
	// and pauses pulling until a probe call succeeds. Negative disables it.
	// Defaults to 20.
	BreakerThreshold int
	// BreakerMaxCooldown caps the wait between probe calls while the
	// breaker is open; the first wait is 1s and each failed probe doubles
	// it. Defaults to 30s.
	BreakerMaxCooldown time.Duration
	// DeferThreshold: a Retry-After longer than this hands the messages
	// back with a delay instead of holding them. Defaults to 30s.
	DeferThreshold time.Duration
	// DeferInitial is the first delay of a hand-back when the meeting has
	// not started; it doubles with each delivery. A locked control login
	// waits twelve times as long. Defaults to 5s.
	DeferInitial time.Duration
	// DeferMaxDelay caps the delay of one hand-back. Defaults to 5m.
	DeferMaxDelay time.Duration
	// DeferMax is how long after its arrival a request may still be handed
	// back for later; after it, the participants still waiting fail with
	// retries_exhausted. Defaults to 1h.
	DeferMax time.Duration
	// GoneMemory is how long a conference whose meeting was found ended or
	// missing is answered from memory, without calls. (A conference whose
	// meeting was found not ready, or whose calls the circuit breaker held
	// back, is answered from memory for as long as its requests are handed
	// back for, whatever GoneMemory says.) Defaults to 30s.
	GoneMemory time.Duration
	// WorkerID names this worker in outcome events. Required.
	WorkerID string
	// Now returns the current time. Every instant the dispatcher decides
	// by comes from it: linger, expiry, retry budgets, hand-back limits,
	// the memory, the breaker and the rate limiter; only the waits
	// themselves run on real timers. Defaults to time.Now.
	Now func() time.Time
}

// DefaultConfig returns the Config that New uses for a zero one: every
// default, written down once.
func DefaultConfig() Config {
	var c Config
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	if c.MaxBatch == 0 {
		c.MaxBatch = 100
	}
	if c.Linger == 0 {
		c.Linger = 50 * time.Millisecond
	}
	if c.APIConcurrency == 0 {
		c.APIConcurrency = 32
	}
	if c.ConferenceCalls == 0 {
		c.ConferenceCalls = 4
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 2000
	}
	if c.RetryInitial == 0 {
		c.RetryInitial = 200 * time.Millisecond
	}
	if c.RetryMaxInterval == 0 {
		c.RetryMaxInterval = 10 * time.Second
	}
	if c.RetryMaxElapsed == 0 {
		c.RetryMaxElapsed = 2 * time.Minute
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = 10 * time.Second
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = 10 * time.Second
	}
	if c.BreakerThreshold == 0 {
		c.BreakerThreshold = 20
	}
	if c.BreakerMaxCooldown == 0 {
		c.BreakerMaxCooldown = 30 * time.Second
	}
	if c.DeferThreshold == 0 {
		c.DeferThreshold = 30 * time.Second
	}
	if c.DeferInitial == 0 {
		c.DeferInitial = 5 * time.Second
	}
	if c.DeferMaxDelay == 0 {
		c.DeferMaxDelay = 5 * time.Minute
	}
	if c.DeferMax == 0 {
		c.DeferMax = time.Hour
	}
	if c.GoneMemory == 0 {
		c.GoneMemory = 30 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// share is what one of members live workers may use of the deployment's
// budget: calls in flight (at least 1), and calls per second (0: no
// limit). members below 1 count as 1.
func (c *Config) share(s Share) (calls int, perSecond float64) {
	members := max(s.Members, 1)
	idle := min(max(s.IdleOthers, 0), members-1)
	busy := members - idle
	switch {
	case s.Idle:
		calls = 1
	case s.Load == 0 && s.OthersLoad == 0:
		// The idle workers keep one call each; the busy ones share the rest.
		calls = max(1, (c.APIConcurrency-idle)/busy)
	default:
		// One each, and the rest by loadShare, rounded down.
		calls = 1 + int(float64(max(0, c.APIConcurrency-idle-busy))*s.loadShare(busy))
	}
	if c.WorkerAPIConcurrency > 0 {
		calls = min(calls, c.WorkerAPIConcurrency)
	}
	if c.APIRate > 0 {
		perSecond = c.APIRate * s.fraction()
	}
	if c.WorkerAPIRate > 0 && (perSecond == 0 || c.WorkerAPIRate < perSecond) {
		perSecond = c.WorkerAPIRate
	}
	return calls, perSecond
}

// windowSafe is the rate to run a limiter at so that no window of one
// second holds more than perSecond calls: the limiter lets one call go
// at once (its burst) and then one every 1/rate, so a second holds at
// most rate+1 of them. Below 2 calls per second that takes half the rate,
// and 1 call per worker is then the least any second may hold.
func windowSafe(perSecond float64) float64 {
	switch {
	case perSecond <= 0:
		return perSecond
	case perSecond >= 2:
		return perSecond - 1
	default:
		return perSecond / 2
	}
}

// IdleRateShare is the part of the rate budget an idle worker keeps, of
// the equal share it would have were all busy: enough for the first call
// when work arrives, while it tells the others that it is busy again.
const IdleRateShare = 0.1

// Share is what this worker knows of the deployment when it takes its
// share of the vendor budget: how many workers are live, itself
// included, how many of the others are idle (they held no request
// lately), and whether it is idle itself. An idle worker keeps one call
// in flight and IdleRateShare of an equal rate share; the busy ones share
// the rest equally, or, when Load is given, half equally and half in
// proportion to their loads: Load is this worker's (at least 1 counts) and
// OthersLoad the sum of the busy others'.
type Share struct {
	Members    int
	IdleOthers int
	Idle       bool
	Load       int
	OthersLoad int
}

// fraction is this worker's part of the rate budget.
func (s Share) fraction() float64 {
	members := float64(max(s.Members, 1))
	idle := float64(min(max(s.IdleOthers, 0), max(s.Members, 1)-1))
	if s.Idle {
		return IdleRateShare / members
	}
	busy := 1 - idle*IdleRateShare/members
	if s.Load == 0 && s.OthersLoad == 0 {
		return busy / (members - idle)
	}
	return busy * s.loadShare(int(members-idle))
}

// loadShare is this busy worker's part of what the busy workers share:
// half of it equally, so that a worker with a little work is never
// starved by one with a large backlog, and half in proportion to the
// loads.
func (s Share) loadShare(busy int) float64 {
	self := float64(max(s.Load, 1))
	return 0.5/float64(max(busy, 1)) + 0.5*self/(self+float64(max(s.OthersLoad, 0)))
}

// Raises reports whether taking next instead of s raises this worker's
// share of the rate budget: a raise must wait until the others have
// lowered theirs, a cut need not.
func (s Share) Raises(next Share) bool { return next.fraction() > s.fraction() }

func (c *Config) validate() error {
	var errs []error
	if c.MaxBatch < 1 || c.MaxBatch > 10000 {
		errs = append(errs, fmt.Errorf("MaxBatch: must be between 1 and 10000, got %d", c.MaxBatch))
	}
	if c.Linger < 0 {
		errs = append(errs, fmt.Errorf("Linger: must not be negative, got %s", c.Linger))
	}
	if c.ConferenceCalls < 1 {
		errs = append(errs, fmt.Errorf("ConferenceCalls: must be at least 1, got %d", c.ConferenceCalls))
	}
	if c.APIConcurrency < 1 {
		errs = append(errs, fmt.Errorf("APIConcurrency: must be at least 1, got %d", c.APIConcurrency))
	}
	if c.MaxInFlight < 1 {
		errs = append(errs, fmt.Errorf("MaxInFlight: must be at least 1, got %d", c.MaxInFlight))
	}
	if c.RetryInitial < 0 || c.RetryMaxInterval < c.RetryInitial {
		errs = append(errs, fmt.Errorf("RetryMaxInterval: must be at least RetryInitial (%s), got %s", c.RetryInitial, c.RetryMaxInterval))
	}
	if c.RetryMaxElapsed < 0 {
		errs = append(errs, fmt.Errorf("RetryMaxElapsed: must not be negative, got %s", c.RetryMaxElapsed))
	}
	if c.KeepAlive <= 0 {
		errs = append(errs, fmt.Errorf("KeepAlive: must be positive, got %s", c.KeepAlive))
	}
	if c.PublishTimeout <= 0 {
		errs = append(errs, fmt.Errorf("PublishTimeout: must be positive, got %s", c.PublishTimeout))
	}
	if c.WorkerAPIConcurrency < 0 {
		errs = append(errs, fmt.Errorf("WorkerAPIConcurrency: must not be negative, got %d", c.WorkerAPIConcurrency))
	}
	if c.APIRate < 0 {
		errs = append(errs, fmt.Errorf("APIRate: must not be negative, got %g", c.APIRate))
	}
	if c.WorkerAPIRate < 0 {
		errs = append(errs, fmt.Errorf("WorkerAPIRate: must not be negative, got %g", c.WorkerAPIRate))
	}
	if c.BreakerMaxCooldown < time.Second {
		errs = append(errs, fmt.Errorf("BreakerMaxCooldown: must be at least 1s, got %s", c.BreakerMaxCooldown))
	}
	if c.DeferThreshold <= 0 || c.DeferInitial <= 0 || c.DeferMaxDelay <= 0 || c.DeferMax <= 0 {
		errs = append(errs, fmt.Errorf("DeferThreshold, DeferInitial, DeferMaxDelay, DeferMax: must be positive, got %s, %s, %s, %s",
			c.DeferThreshold, c.DeferInitial, c.DeferMaxDelay, c.DeferMax))
	}
	if c.GoneMemory < 0 {
		errs = append(errs, fmt.Errorf("GoneMemory: must not be negative, got %s", c.GoneMemory))
	}
	if c.WorkerID == "" {
		errs = append(errs, errors.New("WorkerID: must not be empty"))
	}
	return errors.Join(errs...)
}
