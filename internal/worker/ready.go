package worker

import (
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus"
)

// readiness tells whether the worker takes work: Start has assembled every
// part (the consumer is bound), Stop has not begun, and the NATS
// connection is up. When it is not ready, why says which of these fails.
func (w *Worker) readiness() (ready bool, why string) {
	w.mu.Lock()
	p, stopped := w.parts, w.stopped
	w.mu.Unlock()
	switch {
	case stopped:
		return false, "stopping"
	case p == nil:
		return false, "starting"
	case !p.nc.IsConnected():
		return false, "NATS not connected"
	}
	return true, ""
}

// newReadyGauge is hangup_ready: 1 while readiness holds, else 0, read at
// each scrape. Alert rules use this name.
func (w *Worker) newReadyGauge() prometheus.GaugeFunc {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hangup_ready",
		Help: "1 while the worker takes work (NATS connected, consumer bound, not stopping), else 0; /readyz answers 200 exactly then.",
	}, func() float64 {
		if ready, _ := w.readiness(); ready {
			return 1
		}
		return 0
	})
}

// serveHealth answers while the process runs.
func serveHealth(rw http.ResponseWriter, _ *http.Request) {
	rw.WriteHeader(http.StatusOK)
	_, _ = rw.Write([]byte("ok\n"))
}

// serveReady answers 200 while the worker is ready, 503 with the reason
// otherwise.
func (w *Worker) serveReady(rw http.ResponseWriter, _ *http.Request) {
	if ready, why := w.readiness(); !ready {
		http.Error(rw, why, http.StatusServiceUnavailable)
		return
	}
	_, _ = rw.Write([]byte("ready\n"))
}

// handlePProf serves net/http/pprof's profiles under /debug/pprof/.
func handlePProf(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}
