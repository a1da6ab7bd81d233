//go:build unix

package soak

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hangup-dev/hangup/internal/audit"
	"github.com/hangup-dev/hangup/meetingclient"
	"github.com/hangup-dev/hangup/schemas"
)

// Shares of the load. Each valid request is followed by an invalid message
// with probability invalidRate and by a duplicate of a recent valid request
// with probability duplicateRate.
const (
	invalidRate    = 0.02
	duplicateRate  = 0.03
	expiringRate   = 0.03 // valid requests with expiresAt 1-4 s ahead
	noTokenRate    = 0.08 // valid requests without a token header
	wrongTokenRate = 0.02 // valid requests with another conference's token
	ghostRate      = 0.03 // valid requests naming someone never online
	maxIDs         = 5    // participant IDs per valid request: 1 to maxIDs
	idWindow       = 8    // consecutive participants a request picks from
)

// credentialsBucket is the key-value bucket of host passwords the worker
// falls back to (its --credentials-bucket default).
const credentialsBucket = "meeting_credentials"

// tokenPattern is what every simulator control token looks like.
var tokenPattern = regexp.MustCompile(`stb[0-9a-f]{48}`)

// meetingInfo is a simulated meeting and its host password.
type meetingInfo struct {
	id, password string
}

// heldToken is a control token and the token epoch it was obtained in;
// the epoch goes up each time the simulator expires every token.
type heldToken struct {
	token string
	epoch int
}

// loader publishes the load and remembers what it published.
type loader struct {
	js           jetstream.JetStream
	api          *meetingclient.Client
	rng          *rand.Rand
	meetings     []meetingInfo
	participants int
	requests     int
	duration     time.Duration

	mu        sync.Mutex
	tokens    map[string]heldToken // conference -> newest token
	allTokens map[string]bool      // every token obtained: secrets
	epoch     int
	refreshes int
	// tokenCalls counts, per conference, the loader's token calls that
	// obtained a token: the simulator counts them with the workers'.
	tokenCalls map[string]int

	// refresh asks the refresher to get new tokens after the given lag;
	// buffered so that the chaos never waits on the loader.
	refresh chan time.Duration

	// Owned by the publishing goroutine until run returns.
	valid          map[string]audit.Sent
	expiring       map[string]bool
	tokenKind      map[string]string // requestID -> fresh, stale, none, wrong
	neverOnline    map[string]map[string]bool
	invalid        int
	invalidKinds   map[string]int
	dupPublished   int
	dupDropped     int
	publishRetries int
	recent         []*nats.Msg
	cursor         map[string]int
	ghosts         int
	finished       time.Time // when run returned
}

func newLoader(js jetstream.JetStream, api *meetingclient.Client, rng *rand.Rand, meetings []meetingInfo, participants, requests int, duration time.Duration) *loader {
	return &loader{
		js: js, api: api, rng: rng, meetings: meetings, participants: participants,
		requests: requests, duration: duration,
		tokens:       map[string]heldToken{},
		allTokens:    map[string]bool{},
		tokenCalls:   map[string]int{},
		refresh:      make(chan time.Duration, 16),
		valid:        map[string]audit.Sent{},
		expiring:     map[string]bool{},
		tokenKind:    map[string]string{},
		neverOnline:  map[string]map[string]bool{},
		invalidKinds: map[string]int{},
		cursor:       map[string]int{},
	}
}

// writeCredentials stores every meeting's host password in the
// credentials bucket, creating the bucket with the given replicas if it is
// missing.
func writeCredentials(ctx context.Context, js jetstream.JetStream, meetings []meetingInfo, replicas int) error {
	kv, err := js.KeyValue(ctx, credentialsBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: credentialsBucket, History: 1, Storage: jetstream.FileStorage, Replicas: replicas})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, credentialsBucket)
		}
	}
	if err != nil {
		return fmt.Errorf("credentials bucket: %w", err)
	}
	for _, m := range meetings {
		v, err := json.Marshal(map[string]string{"hostPassword": m.password})
		if err != nil {
			return err
		}
		if _, err := kv.Put(ctx, m.id, v); err != nil {
			return fmt.Errorf("put credentials of %s: %w", m.id, err)
		}
	}
	return nil
}

// refreshTokens obtains a new token for every meeting from the token API,
// retrying each until it succeeds or ctx ends (the API is down during an
// outage).
func (l *loader) refreshTokens(ctx context.Context) error {
	l.mu.Lock()
	epoch := l.epoch
	l.refreshes++
	l.mu.Unlock()
	work := make(chan meetingInfo)
	errs := make(chan error, len(l.meetings)) // one answer per meeting, never blocks
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range work {
				errs <- l.fetchToken(ctx, m, epoch)
			}
		}()
	}
	for _, m := range l.meetings {
		work <- m
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (l *loader) fetchToken(ctx context.Context, m meetingInfo, epoch int) error {
	return poll(ctx, 2*time.Minute, 200*time.Millisecond, func(ctx context.Context) error {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		tok, err := l.api.CreateConfToken(cctx, m.id, m.password)
		if err != nil {
			return fmt.Errorf("token of %s: %w", m.id, err)
		}
		if !tokenPattern.MatchString(tok.Token) || len(tok.Token) != 51 {
			return fmt.Errorf("token of %s does not look like stb + 48 hex digits", m.id)
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		l.allTokens[tok.Token] = true
		l.tokenCalls[m.id]++
		if cur, ok := l.tokens[m.id]; !ok || cur.epoch <= epoch {
			l.tokens[m.id] = heldToken{token: tok.Token, epoch: epoch}
		}
		return nil
	})
}

// tokensExpired is called by the chaos right before it expires every
// token; the loader refreshes its tokens after lag, so that requests
// published meanwhile carry expired ones.
func (l *loader) tokensExpired(lag time.Duration) {
	l.mu.Lock()
	l.epoch++
	l.mu.Unlock()
	select {
	case l.refresh <- lag:
	default: // a refresh is already queued
	}
}

// refresher refreshes the tokens when asked, until ctx ends.
func (l *loader) refresher(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case lag := <-l.refresh:
			t := time.NewTimer(lag)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			if err := l.refreshTokens(ctx); err != nil && ctx.Err() == nil {
				return err
			}
		}
	}
}

// secrets returns every host password and every token obtained.
func (l *loader) secrets() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, m := range l.meetings {
		if !seen[m.password] {
			seen[m.password] = true
			out = append(out, m.password)
		}
	}
	for tok := range l.allTokens {
		out = append(out, tok)
	}
	return out
}

// run publishes the load, spread evenly over the duration from start.
func (l *loader) run(ctx context.Context, start time.Time) error {
	for i := 0; i < l.requests; i++ {
		due := start.Add(time.Duration(int64(l.duration) * int64(i) / int64(l.requests)))
		if wait := time.Until(due); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
		if err := l.publishValid(ctx, i); err != nil {
			return err
		}
		if l.rng.Float64() < invalidRate {
			if err := l.publishInvalid(ctx); err != nil {
				return err
			}
		}
		if l.rng.Float64() < duplicateRate && len(l.recent) > 0 {
			if err := l.publishDuplicate(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// publish publishes msg until the stream confirms it, retrying with the
// same Nats-Msg-Id (so that a retry of a stored message is dropped as a
// duplicate) while the server restarts.
func (l *loader) publish(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ack, err := l.js.PublishMsg(pctx, msg)
		cancel()
		if err == nil {
			return ack, nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return nil, fmt.Errorf("publish %s: %w", msg.Header.Get(schemas.MsgIDHeader), err)
		}
		l.publishRetries++
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}

// token picks the header token of a valid request and names its kind.
func (l *loader) token(conf string) (string, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.rng.Float64()
	switch {
	case r < noTokenRate:
		return "", "none"
	case r < noTokenRate+wrongTokenRate:
		other := l.meetings[l.rng.IntN(len(l.meetings))].id
		if other != conf {
			return l.tokens[other].token, "wrong"
		}
	}
	ht := l.tokens[conf]
	if ht.epoch < l.epoch {
		return ht.token, "stale"
	}
	return ht.token, "fresh"
}

// publishValid publishes the i-th valid request over overlapping
// participants of a random conference.
func (l *loader) publishValid(ctx context.Context, i int) error {
	conf := l.meetings[l.rng.IntN(len(l.meetings))].id
	cur := l.cursor[conf]
	l.cursor[conf] = cur + 1 + l.rng.IntN(3)
	k := 1 + l.rng.IntN(maxIDs)
	var ids []string
	for _, off := range l.rng.Perm(idWindow)[:k] {
		ids = append(ids, fmt.Sprintf("p-%04d", (cur+off)%l.participants+1))
	}
	if l.rng.Float64() < ghostRate {
		l.ghosts++
		ghost := fmt.Sprintf("ghost-%05d", l.ghosts)
		ids = append(ids, ghost)
		if l.neverOnline[conf] == nil {
			l.neverOnline[conf] = map[string]bool{}
		}
		l.neverOnline[conf][ghost] = true
	}
	req := schemas.Request{
		RequestID:      fmt.Sprintf("soak-%06d", i),
		ConferenceID:   conf,
		ParticipantIDs: ids,
		Reason:         "soak test",
		RequestedBy:    "soak",
	}
	if l.rng.Float64() < expiringRate {
		exp := time.Now().Add(time.Second + time.Duration(l.rng.Int64N(int64(3*time.Second)))).UTC()
		req.ExpiresAt = &exp
		l.expiring[req.RequestID] = true
	}
	data, err := json.Marshal(req)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(schemas.DefaultRequestSubjectPrefix + "." + conf)
	msg.Data = data
	msg.Header.Set(schemas.MsgIDHeader, req.RequestID)
	tok, kind := l.token(conf)
	if tok != "" {
		msg.Header.Set(schemas.TokenHeader, tok)
	}
	if _, err := l.publish(ctx, msg); err != nil {
		return err
	}
	l.valid[req.RequestID] = audit.Sent{ConferenceID: conf, ParticipantIDs: ids}
	l.tokenKind[req.RequestID] = kind
	l.recent = append(l.recent, msg)
	if len(l.recent) > 64 {
		l.recent = l.recent[1:]
	}
	return nil
}

// publishDuplicate republishes a recent valid request byte for byte, with
// the same Nats-Msg-Id.
func (l *loader) publishDuplicate(ctx context.Context) error {
	orig := l.recent[l.rng.IntN(len(l.recent))]
	msg := nats.NewMsg(orig.Subject)
	msg.Data = orig.Data
	for k, v := range orig.Header {
		msg.Header[k] = append([]string(nil), v...)
	}
	ack, err := l.publish(ctx, msg)
	if err != nil {
		return err
	}
	l.dupPublished++
	if ack.Duplicate {
		l.dupDropped++
	}
	return nil
}

// publishInvalid publishes the next of a cycle of malformed messages, each
// once, with a Nats-Msg-Id of its own; half of them carry a real token,
// which the dead letter must redact.
func (l *loader) publishInvalid(ctx context.Context) error {
	n := l.invalid
	conf := l.meetings[l.rng.IntN(len(l.meetings))].id
	subj := schemas.DefaultRequestSubjectPrefix + "." + conf
	id := fmt.Sprintf("inv-%05d", n)
	valid := func(extra string) string {
		return `{"requestID":"` + id + `","conferenceID":"` + conf + `","participantIDs":["p-0001"]` + extra + `}`
	}
	l.mu.Lock()
	tok := l.tokens[conf].token
	l.mu.Unlock()
	hdr := nats.Header{}
	if l.rng.IntN(2) == 0 {
		hdr.Set(schemas.TokenHeader, tok)
	}
	kinds := []struct {
		name, subject, data string
	}{
		{"not JSON", subj, "hang up p-0001 please"},
		{"JSON array", subj, `["p-0001"]`},
		{"empty object", subj, `{}`},
		{"no participants", subj, `{"requestID":"` + id + `","conferenceID":"` + conf + `"}`},
		{"empty participants", subj, `{"requestID":"` + id + `","conferenceID":"` + conf + `","participantIDs":[]}`},
		{"requestID not a string", subj, `{"requestID":7,"conferenceID":"` + conf + `","participantIDs":["p-0001"]}`},
		{"conference mismatch", schemas.DefaultRequestSubjectPrefix + ".other-conf", valid("")},
		{"unknown field", subj, valid(`,"dryRun":true`)},
		{"bad expiresAt", subj, valid(`,"expiresAt":"tomorrow"`)},
		{"control character", subj, valid(`,"reason":"a\u0007b"`)},
		{"space in participant", subj, `{"requestID":"` + id + `","conferenceID":"` + conf + `","participantIDs":["p 0001"]}`},
		{"duplicate key", subj, `{"requestID":"` + id + `","requestID":"x","conferenceID":"` + conf + `","participantIDs":["p-0001"]}`},
		{"bad requestID", subj, `{"requestID":"no/slash","conferenceID":"` + conf + `","participantIDs":["p-0001"]}`},
		{"subject too deep", subj + ".extra", valid("")},
		{"too many participants", subj, `{"requestID":"` + id + `","conferenceID":"` + conf + `","participantIDs":[` + manyIDs(501) + `]}`},
		{"too big", subj, valid(`,"reason":"` + strings.Repeat("x", 70000) + `"`)},
		{"two token headers", subj, valid("")},
		{"empty", subj, ""},
	}
	k := kinds[n%len(kinds)]
	if k.name == "two token headers" {
		hdr[schemas.TokenHeader] = []string{tok, tok}
	}
	msg := nats.NewMsg(k.subject)
	msg.Data = []byte(k.data)
	msg.Header = hdr
	msg.Header.Set(schemas.MsgIDHeader, "soak-"+id)
	if _, err := l.publish(ctx, msg); err != nil {
		return err
	}
	l.invalid++
	l.invalidKinds[k.name]++
	return nil
}

func manyIDs(n int) string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf(`"p-%04d"`, i+1)
	}
	return strings.Join(ids, ",")
}
