package credentials

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hangup-dev/hangup/internal/natstest"
	"github.com/hangup-dev/hangup/meetingclient"
)

func FuzzDecodeCredentials(f *testing.F) {
	for _, s := range []string{
		`{"hostPassword":"pw"}`, `{"hostPassword":""}`, `{"hostPassword":1}`, `{"hostPassword":null}`,
		`{"hostPassword":"pw","extra":[1,2]}`, `null`, `[]`, `"pw"`, ``, `{`, "{\"hostPassword\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		c, err := decodeCredentials(value)
		if err != nil {
			// Only fixed reasons, never a piece of the value.
			require.True(t, slices.Contains(decodeFailures, err), "unexpected error %q", err)
			require.Empty(t, c.HostPassword)
			return
		}
		require.NotEmpty(t, c.HostPassword)
		var again struct {
			HostPassword string `json:"hostPassword"`
		}
		require.NoError(t, json.Unmarshal(value, &again))
		require.Equal(t, again.HostPassword, c.HostPassword)
	})
}

func TestDecodeCredentials(t *testing.T) {
	tests := []struct {
		value string
		want  string
		err   error
	}{
		{value: `{"hostPassword":"pw"}`, want: "pw"},
		{value: `{"hostPassword":"pw","scheduledBy":"x"}`, want: "pw"},
		{value: `{"hostPassword":""}`, err: errNoPassword},
		{value: `{}`, err: errNoPassword},
		{value: `null`, err: errNoPassword},
		{value: `{"hostPassword":7}`, err: errNotString},
		{value: `"pw"`, err: errNotObject},
		{value: `pw`, err: errNotObject},
		{value: ``, err: errNotObject},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			c, err := decodeCredentials([]byte(tt.value))
			require.Equal(t, tt.err, err)
			require.Equal(t, tt.want, c.HostPassword)
		})
	}
}

// staticAPI issues tokens that live a minute, without a vendor.
type staticAPI struct {
	now func() time.Time
	mu  sync.Mutex
	n   int
}

func (a *staticAPI) CreateConfToken(_ context.Context, _, _ string, _ ...meetingclient.TokenOption) (*meetingclient.ConfToken, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.n++
	return &meetingclient.ConfToken{Token: "tok-" + strconv.Itoa(a.n), ExpireTime: a.now().Add(time.Minute), Lifetime: time.Minute}, nil
}

// The cache holds about as many tokens as are live, not one per
// conference ever seen.
func TestCacheIsBounded(t *testing.T) {
	_, js := natstest.Connect(t, natstest.Run(t))
	kv, err := EnsureBucket(t.Context(), js, "", 1)
	require.NoError(t, err)
	tokens, err := EnsureTokenBucket(t.Context(), js, "", 1)
	require.NoError(t, err)
	now := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	s, err := New(Config{Now: clock}, Deps{Credentials: kv, Tokens: tokens, JetStream: js, API: &staticAPI{now: clock}})
	require.NoError(t, err)

	const conferences, live = 2000, 100
	for i := range conferences {
		id := "conf-" + strconv.Itoa(i)
		_, err := kv.Put(t.Context(), id, []byte(`{"hostPassword":"pw"}`))
		require.NoError(t, err)
		_, err = s.Token(t.Context(), id)
		require.NoError(t, err)
		if i%live == live-1 {
			now = now.Add(2 * time.Minute) // every token so far has expired
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	require.LessOrEqual(t, len(s.cache), 2*minPrune+live)
	require.Empty(t, s.flights)
}

func TestSharedFor(t *testing.T) {
	now := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	s := &Store{refreshBefore: 5 * time.Minute}
	tests := []struct {
		name      string
		tok       meetingclient.ConfToken
		expires   time.Duration // from now
		refreshAt time.Duration
	}{
		{"expire time", meetingclient.ConfToken{ExpireTime: now.Add(30 * time.Minute), Lifetime: 30 * time.Minute}, 30 * time.Minute, 25 * time.Minute},
		{"no expire time", meetingclient.ConfToken{Lifetime: 20 * time.Minute}, 20 * time.Minute, 16 * time.Minute},
		{"nothing", meetingclient.ConfToken{}, 30 * time.Minute, 25 * time.Minute},
		{"expire time only", meetingclient.ConfToken{ExpireTime: now.Add(10 * time.Minute)}, 10 * time.Minute, 8 * time.Minute},
		{"seconds", meetingclient.ConfToken{ExpireTime: now.Add(4 * time.Second), Lifetime: 4 * time.Second}, 4 * time.Second, 3200 * time.Millisecond},
		{"clock behind vendor", meetingclient.ConfToken{ExpireTime: now.Add(2 * time.Hour), Lifetime: 30 * time.Minute}, 30 * time.Minute, 25 * time.Minute},
		{"clock ahead of vendor", meetingclient.ConfToken{ExpireTime: now.Add(-time.Minute), Lifetime: 30 * time.Minute}, 30 * time.Minute, 25 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.tok.Token = "t"
			v := s.sharedFor(&tt.tok, now)
			require.Equal(t, "t", v.Token)
			require.Equal(t, now.Add(tt.expires), fromMS(v.ExpiresAt))
			require.Equal(t, now.Add(tt.refreshAt), fromMS(v.RefreshAt))
			require.Equal(t, now, fromMS(v.ObtainedAt))
			require.Nil(t, v.Lease)
		})
	}
}
