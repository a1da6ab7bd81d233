package bench

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/hangup-dev/hangup/internal/meetingsim"
)

// vendor is a fresh simulator of the meeting API on a loopback port, behind
// the concurrency cap, with a control token issued for every meeting.
type vendor struct {
	sim     *meetingsim.Simulator
	callCap *CallCap
	URL     string
	tokens  map[string]string

	srv  *http.Server
	done chan struct{}
}

// vendorPassword is the host password of every simulated meeting; the bench
// never uses it (requests carry tokens).
const vendorPassword = "bench-host-password"

// startVendor starts a simulator holding every conference of w, with its
// participants online, answering each call after latency and refusing more
// than maxConcurrent hang-up calls at once.
func startVendor(w *Workload, seed uint64, latency time.Duration, maxConcurrent int) (*vendor, error) {
	sim, err := meetingsim.New(meetingsim.Config{
		Mode:   meetingsim.ModeLenient,
		Seed:   seed,
		Faults: meetingsim.Faults{LatencyBase: latency},
		// Keep only the newest record: the counters (Stats) are never
		// trimmed, and the records of 100,000 calls would weigh on the
		// memory measured.
		MaxRecords: 1,
	})
	if err != nil {
		return nil, err
	}
	v := &vendor{sim: sim, tokens: make(map[string]string, len(w.Conferences))}
	for _, id := range w.Conferences {
		if err := sim.AddMeeting(meetingsim.Meeting{ID: id, HostPassword: vendorPassword, Participants: w.Online[id]}); err != nil {
			return nil, err
		}
		tok, err := sim.IssueToken(id)
		if err != nil {
			return nil, err
		}
		v.tokens[id] = tok
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("simulator listener: %w", err)
	}
	v.callCap = NewCallCap(sim.Handler(), maxConcurrent)
	v.srv = &http.Server{Handler: v.callCap, ReadHeaderTimeout: 5 * time.Second}
	v.done = make(chan struct{})
	go func() {
		defer close(v.done)
		_ = v.srv.Serve(ln)
	}()
	v.URL = "http://" + ln.Addr().String()
	return v, nil
}

// close stops the HTTP server and waits for it.
func (v *vendor) close() {
	_ = v.srv.Close()
	<-v.done
}

// disconnected returns, per conference, who the simulator removed: those
// online at the start and no longer online.
func (v *vendor) disconnected(w *Workload) map[string]map[string]bool {
	out := make(map[string]map[string]bool, len(w.Online))
	for conf, ids := range w.Online {
		still := map[string]bool{}
		for _, p := range v.sim.Online(conf) {
			still[p] = true
		}
		gone := make(map[string]bool, len(ids))
		for _, p := range ids {
			if !still[p] {
				gone[p] = true
			}
		}
		out[conf] = gone
	}
	return out
}
