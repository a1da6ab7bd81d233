package bench

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hangup-dev/hangup/internal/meetingsim"
)

// CallCap is an http.Handler in front of the simulator that refuses
// hang-up calls beyond a number in flight at once, as the vendor does: HTTP
// 429 with the vendor's flow-control body. The simulator itself has no such
// cap. Other paths pass through uncounted.
type CallCap struct {
	next     http.Handler
	max      int64
	inFlight atomic.Int64
	peak     atomic.Int64
	refused  atomic.Int64

	mu        sync.Mutex
	perSecond map[int64]int // hang-up calls arrived, by Unix second
}

// NewCallCap returns a CallCap that lets at most maxInFlight hang-up calls
// reach next at once; maxInFlight < 1 lets every call through.
func NewCallCap(next http.Handler, maxInFlight int) *CallCap {
	return &CallCap{next: next, max: int64(maxInFlight), perSecond: map[int64]int{}}
}

// flowControlMessage is the error_msg the simulator sends with
// meetingsim.CodeFlowControl.
const flowControlMessage = "SERVER_FLOW_CONTROL"

// ServeHTTP implements http.Handler.
func (c *CallCap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != meetingsim.PathHangUp || r.Method != http.MethodPost {
		c.next.ServeHTTP(w, r)
		return
	}
	c.mu.Lock()
	c.perSecond[time.Now().Unix()]++
	c.mu.Unlock()
	n := c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	if c.max > 0 && n > c.max {
		c.refused.Add(1)
		writeFlowControl(w)
		return
	}
	for {
		p := c.peak.Load()
		if n <= p || c.peak.CompareAndSwap(p, n) {
			break
		}
	}
	c.next.ServeHTTP(w, r)
}

// Refused is how many hang-up calls were answered 429 by the cap.
func (c *CallCap) Refused() int { return int(c.refused.Load()) }

// BusiestSecond is the most hang-up calls that arrived in one second of
// the clock, refused ones included.
func (c *CallCap) BusiestSecond() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	busiest := 0
	for _, n := range c.perSecond {
		busiest = max(busiest, n)
	}
	return busiest
}

// Peak is the most hang-up calls that were let through at once.
func (c *CallCap) Peak() int { return int(c.peak.Load()) }

// writeFlowControl answers as the simulator does for flow control (see
// meetingsim/apierror.go): 429, X-Request-Id, and
// {"error_code":"MMC.100000429","error_msg":"SERVER_FLOW_CONTROL","request_id":...}.
func writeFlowControl(w http.ResponseWriter) {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+).
	id := hex.EncodeToString(b)
	body, _ := json.Marshal(struct {
		ErrorCode string `json:"error_code"`
		ErrorMsg  string `json:"error_msg"`
		RequestID string `json:"request_id"`
	}{meetingsim.CodeFlowControl, flowControlMessage, id})
	w.Header().Set(meetingsim.HeaderRequestID, id)
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write(append(body, '\n'))
}
