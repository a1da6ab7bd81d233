package schemas_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/hangup-dev/hangup/schemas"
)

// The fast path of DecodeRequest must answer exactly as the slow one, which
// is encoding/json's Decoder: the same Request, or the same error text. The
// tests below compare the two on the cases of TestDecodeRequest, the fuzz
// corpus and many mutations of them.

// diffInput is one input to compare the two paths on.
type diffInput struct {
	subject string
	data    []byte
	opts    schemas.DecodeOptions
}

// sameDecode decodes in with both paths and with DecodeRequest, fails t when
// they differ, and reports whether the fast path decided and accepted.
func sameDecode(t testing.TB, in diffInput) (fast, accepted bool) {
	t.Helper()
	slowReq, slowErr := schemas.DecodeRequestSlow(in.subject, in.data, in.opts)
	fastReq, fastErr, ok := schemas.DecodeRequestFast(in.subject, in.data, in.opts)
	if ok {
		if !reflect.DeepEqual(slowReq, fastReq) || !reflect.DeepEqual(slowErr, fastErr) {
			t.Fatalf("fast and slow paths differ on subject %q, %+v, payload %.3000q:\nslow: %+v, %v\nfast: %+v, %v",
				in.subject, in.opts, in.data, slowReq, slowErr, fastReq, fastErr)
		}
	} else {
		require.Falsef(t, json.Valid(in.data) && utf8Object(in.data), "the fast path refused the valid object %q", in.data)
	}
	req, err := schemas.DecodeRequest(in.subject, in.data, in.opts)
	if slowErr == nil {
		require.NoError(t, err)
		require.Equal(t, slowReq, req)
	} else {
		var verr *schemas.ValidationError
		require.ErrorAs(t, err, &verr)
		require.Equal(t, slowErr, verr)
		require.Nil(t, req)
	}
	return ok, ok && fastErr == nil
}

// utf8Object reports whether data is a JSON object of at most
// MaxPayloadBytes of UTF-8: what the fast path must decide itself.
func utf8Object(data []byte) bool {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	return len(data) <= schemas.MaxPayloadBytes && utf8.Valid(data) &&
		len(trimmed) > 0 && trimmed[0] == '{'
}

// handPayloads are payloads written for the fast path's corners: escapes,
// nesting, brackets and quotes inside strings, white space.
var handPayloads = []string{
	`{"requestID":"req-1","conferenceID":"914083136","participantIDs":["a1"]}`,
	`{"\u0072equestID":"r","conferenceID":"914083136","participantIDs":["a1"]}`,
	`{"requestID":"a","request\u0049D":"b","conferenceID":"914083136","participantIDs":["a1"]}`,
	`{"requestID":"r","conferenceID":"914083136","participantIDs":["a1"],"dry\u0052un":1}`,
	`{"a\"b":1,"requestID":"r"}`,
	`{"a\\":1,"requestID":"r","conferenceID":"914083136","participantIDs":["a1"]}`,
	`{"requestID":"r\\","conferenceID":"914083136","participantIDs":["a\\\"b"]}`,
	`{"requestID":"r","conferenceID":"914083136","participantIDs":["\u0041\u007e","\ud83d\ude00","\ud800","a\/b","\u0000"]}`,
	`{"requestID":"r","conferenceID":"914083136","participantIDs":["a1"],"reason":"\"quoted\" \\ \/ \b\f\n\r\t \u00e9 \ud83d\ude00 \udc00"}`,
	`{"requestID":"r","conferenceID":"914083136","participantIDs":["a1"],"requestedBy":"\u2028\u2029 \u009f"}`,
	`{"requestID":"r","conferenceID":"914083136","participantIDs":["a1"],"x":{"a":[1,{"b":"]}\"{["}],"c":[[[]]]}}`,
	`{"requestID":"r","conferenceID":"914083136","participantIDs":[["a"]]}`,
	`{"requestID":"r","conferenceID":"914083136","participantIDs":[{"a":"b"}]}`,
	`{"requestID":"r","conferenceID":"914083136","participantIDs":["a",["b"],"c"]}`,
	`{"requestID":"r","conferenceID":"914083136","participantIDs":["a",{"]":"["},"c"]}`,
	`{"requestID":"r","conferenceID":"914083136","participantIDs":[-0,1e5,1.5E-3,true,false,null]}`,
	`{"requestID":"r","conferenceID":"914083136","participantIDs":{}}`,
	`{"requestID":"r","conferenceID":"914083136","participantIDs":[]}`,
	`{"requestID":"r","conferenceID":"914083136","participantIDs":[ ]}`,
	` { "requestID" : "r" , "conferenceID" :"914083136",	"participantIDs" :[ "a" ,"b"	,
"a" ] ,"reason":	"x" }	`,
	`{"requestID":-1.5e+3,"conferenceID":"914083136","participantIDs":["a1"]}`,
	`{"requestID":true,"conferenceID":{"a":1},"participantIDs":["a1"]}`,
	`{"requestID":"r","conferenceID":"914083136","participantIDs":["a1"],"expiresAt":"2025-06-01T12:30:00.123456789-23:59"}`,
	`{"requestID":"r","conferenceID":"914083136","participantIDs":["a1"],"expiresAt":"9999-12-31T23:59:59-01:00"}`,
	`{"requestID":"r","conferenceID":"914083136","participantIDs":["a1"],"expiresAt":"2025-02-29T12:30:00Z"}`,
	`{"requestID":"r","conferenceID":"914083136","participantIDs":["a1"],"expiresAt":"2025-06-01T12:30:00\u005a"}`,
	`{"requestID":"r","conferenceID":"914083136","participantIDs":["a1"],"expiresAt":"2025-06-01T12:30:00Z\n"}`,
	`{"requestID":"r","conferenceID":"914083136","participantIDs":["a1"],"dryRun":true,"dryRun":false}`,
	`{"requestID":"r.r1","conferenceID":"914083136","participantIDs":["a1"],"replayOf":"r"}`,
	`{"replayOf":"r:0","requestID":"r","conferenceID":"914083136","participantIDs":["a1"]}`,
	`{"requestID":"r","conferenceID":"914083136","participantIDs":["a1"],"replay\u004ff":"r\u002e1"}`,
	`{"requestID":"r","conferenceID":"914083136","participantIDs":["a1"],"replayOf":"r","replayOf":"r"}`,
	`{"requestID":"r","conferenceID":"914083136","participantIDs":["a1"],"replayOf":["r"]}`,
	`{"requestID":"r","conferenceID":"914083136","participantIDs":["a1"],"replayOf":"r/1"}`,
	`{"requestID":"r","conferenceID":"914083136","participantIDs":["a1"],"replayOf":"` + strings.Repeat("q", 129) + `"}`,
	`{"participantIDs":["a1"],"participantIDs":["a1"]}`,
	`{"requestID":"r","conferenceID":"` + strings.Repeat("c", 64) + `","participantIDs":["a1"]}`,
	`{"requestID":"r","conferenceID":"914083136","participantIDs":["` + strings.Repeat("~", 128) + `","` + strings.Repeat("é", 64) + `"]}`,
	`{"requestID":"r","conferenceID":"914083136","participantIDs":["a1"],"reason":"` + strings.Repeat("ü", 1025) + `"}`,
	`{"requestID":"r","conferenceID":"914083136","participantIDs":` + repeatedIDs(40, 7) + `}`,
	`{"requestID":"r","conferenceID":"914083136","participantIDs":` + repeatedIDs(16, 5) + `}`,
	`{"requestID":"r","conferenceID":"914083136","participantIDs":` + repeatedIDs(17, 5) + `}`,
	`{"requestID":"r","conferenceID":"914083136","participantIDs":` + repeatedIDs(700, 300) + `}`,
	`{}`, `{ }`, `[]`, `null`, `true`, `false`, `0`, `-1.5`, `"s"`, `""`, ` `, ``, `{"a":1}`, `{"a":{}}`,
}

// repeatedIDs returns a JSON array of n IDs of which distinct are different.
func repeatedIDs(n, distinct int) string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%q", fmt.Sprintf("id-%d", (i*7)%distinct))
	}
	return "[" + strings.Join(ids, ",") + "]"
}

// diffBases returns the inputs the mutations start from.
func diffBases(t testing.TB) []diffInput {
	var bases []diffInput
	for _, tc := range decodeCases() {
		subject := tc.subject
		if subject == "" {
			subject = testSubject
		}
		bases = append(bases, diffInput{subject: subject, data: []byte(tc.payload), opts: tc.opts})
	}
	for _, p := range handPayloads {
		bases = append(bases, diffInput{subject: testSubject, data: []byte(p)})
	}
	for _, dir := range []string{"FuzzDecodeRequest", "FuzzDecodeFastMatchesSlow"} {
		bases = append(bases, fuzzCorpus(t, filepath.Join("testdata", "fuzz", dir))...)
	}
	examples, err := filepath.Glob(filepath.Join("examples", "request*.json"))
	require.NoError(t, err)
	for _, name := range examples {
		data, err := os.ReadFile(name)
		require.NoError(t, err)
		bases = append(bases, diffInput{subject: testSubject, data: data})
	}
	return bases
}

// fuzzCorpus reads the inputs of a fuzz corpus directory: a subject, a
// payload and, for FuzzDecodeFastMatchesSlow, a participant limit.
func fuzzCorpus(t testing.TB, dir string) []diffInput {
	names, err := filepath.Glob(filepath.Join(dir, "*"))
	require.NoError(t, err)
	var inputs []diffInput
	for _, name := range names {
		b, err := os.ReadFile(name)
		require.NoError(t, err)
		var in diffInput
		for _, line := range strings.Split(string(b), "\n")[1:] {
			kind, arg, ok := strings.Cut(line, "(")
			if !ok {
				continue
			}
			arg = strings.TrimSuffix(arg, ")")
			switch kind {
			case "string":
				in.subject, err = strconv.Unquote(arg)
			case "[]byte":
				var s string
				s, err = strconv.Unquote(arg)
				in.data = []byte(s)
			case "int":
				in.opts.MaxParticipants, err = strconv.Atoi(arg)
			}
			require.NoError(t, err, "%s: %s", name, line)
		}
		inputs = append(inputs, in)
	}
	return inputs
}

// mutations returns variants of in: truncated, with white space inserted,
// with characters escaped, with members repeated or their values replaced,
// wrapped, with data appended, and randomly changed.
func mutations(in diffInput, rng *rand.Rand) []diffInput {
	var out [][]byte
	data := in.data
	limit := 300
	if len(data) > 2000 { // the slow path takes long over large payloads
		limit = 20
	}
	positions := allOrSome(len(data), limit, rng)
	for _, i := range positions {
		out = append(out, join(data[:i]))
		out = append(out, join(data[:i], []byte{" \t\r\n"[i%4]}, data[i:]))
		if i < len(data) && isAlnum(data[i]) {
			out = append(out, join(data[:i], fmt.Appendf(nil, `\u%04X`, data[i]), data[i+1:]))
			out = append(out, join(data[:i], fmt.Appendf(nil, `\u%04x`, data[i]), data[i+1:]))
		}
	}
	out = append(out, memberMutations(data)...)
	for _, w := range [][2]string{{"[", "]"}, {"", "x"}, {"", " {}"}, {"", "]"}, {"", "}"}, {"", ","}, {"", " \n"}, {"", "0"}, {" ", ""}, {"\"", "\""}} {
		out = append(out, join([]byte(w[0]), data, []byte(w[1])))
	}
	for range 30 {
		out = append(out, randomMutation(data, rng))
	}
	inputs := make([]diffInput, 0, len(out)+2)
	for _, d := range out {
		inputs = append(inputs, diffInput{subject: in.subject, data: d, opts: in.opts})
	}
	inputs = append(inputs,
		diffInput{subject: schemas.DefaultRequestSubjectPrefix + ".other", data: data, opts: in.opts},
		diffInput{subject: in.subject, data: data, opts: schemas.DecodeOptions{MaxParticipants: 1 + rng.IntN(3)}})
	return inputs
}

// allOrSome returns every offset 0..n when n is at most limit, else limit
// random ones.
func allOrSome(n, limit int, rng *rand.Rand) []int {
	offsets := make([]int, 0, min(n+1, limit))
	for i := 0; i <= n; i++ {
		if n <= limit {
			offsets = append(offsets, i)
		} else if len(offsets) < limit {
			offsets = append(offsets, rng.IntN(n+1))
		}
	}
	return offsets
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func join(parts ...[]byte) []byte {
	return bytes.Join(parts, nil)
}

// replacementValues stand in for the value of a member.
var replacementValues = []string{
	`null`, `1`, `-0.5e3`, `true`, `false`, `{}`, `[]`, `{"a":[1,"]"]}`, `["x",null]`, `"\u0041"`, `""`,
	`"914083136"`, `["a","a"]`, `[1]`, `"2025-06-01T12:30:00Z"`, `"a b"`,
}

// memberMutations repeats each member of the object data at its end and
// replaces its value with each of replacementValues.
func memberMutations(data []byte) [][]byte {
	spans := memberSpans(data)
	var out [][]byte
	for _, s := range spans {
		member := data[s.key:s.end]
		if end := bytes.LastIndexByte(data, '}'); end >= 0 {
			out = append(out, join(data[:end], []byte(","), member, data[end:]))
		}
		out = append(out, join(data[:s.key], member, []byte(","), data[s.key:]))
		for _, v := range replacementValues {
			out = append(out, join(data[:s.value], []byte(v), data[s.end:]))
		}
	}
	return out
}

// span locates a member of an object: its key, value and end.
type span struct{ key, value, end int }

// memberSpans locates the members of the object data, or returns nil.
func memberSpans(data []byte) []span {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	var spans []span
	for dec.More() {
		start := int(dec.InputOffset())
		if _, err := dec.Token(); err != nil {
			return spans
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return spans
		}
		end := int(dec.InputOffset())
		key := start + bytes.IndexByte(data[start:], '"')
		spans = append(spans, span{key: key, value: end - len(raw), end: end})
	}
	return spans
}

// randomMutation deletes, inserts, repeats or swaps bytes of data.
func randomMutation(data []byte, rng *rand.Rand) []byte {
	const alphabet = "{}[]:,\"\\ u0aAeE-+.tfnr\t\n/zZT"
	d := bytes.Clone(data)
	for range 1 + rng.IntN(3) {
		i := rng.IntN(len(d) + 1)
		switch op := rng.IntN(4); {
		case op == 0 && i < len(d):
			d = append(d[:i], d[i+1:]...)
		case op == 1:
			d = join(d[:i], []byte{alphabet[rng.IntN(len(alphabet))]}, d[i:])
		case op == 2 && i < len(d):
			j := i + rng.IntN(min(16, len(d)-i)) + 1
			d = join(d[:j], d[i:j], d[j:])
		case op == 3 && len(d) > 1:
			j := rng.IntN(len(d))
			i = min(i, len(d)-1)
			d[i], d[j] = d[j], d[i]
		}
	}
	return d
}

func TestDecodeFastMatchesSlow(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var total, fast, accepted int
	for _, base := range diffBases(t) {
		for _, in := range append(mutations(base, rng), base) {
			f, a := sameDecode(t, in)
			total++
			if f {
				fast++
			}
			if a {
				accepted++
			}
		}
	}
	t.Logf("%d inputs: %d decided by the fast path, %d of them accepted", total, fast, accepted)
	// The corpus must exercise the fast path, not only the fallback.
	require.Greater(t, fast, total/4)
	require.Greater(t, accepted, 1000)
}

// FuzzDecodeFastMatchesSlow compares the fast path of DecodeRequest with the
// slow one on arbitrary inputs. Run it with
//
//	go test -run='^$' -fuzz=FuzzDecodeFastMatchesSlow -fuzztime=60s ./schemas/
func FuzzDecodeFastMatchesSlow(f *testing.F) {
	// Large seeds slow the fuzzer down (it minimises what it finds);
	// TestDecodeFastMatchesSlow covers them.
	const maxSeed = 2048
	for _, tc := range decodeCases() {
		subject := tc.subject
		if subject == "" {
			subject = testSubject
		}
		if len(tc.payload) <= maxSeed {
			f.Add(subject, []byte(tc.payload), tc.opts.MaxParticipants)
		}
	}
	for _, p := range handPayloads {
		if len(p) <= maxSeed {
			f.Add(testSubject, []byte(p), 0)
			f.Add(testSubject, []byte(p), 2)
		}
	}
	f.Fuzz(func(t *testing.T, subject string, data []byte, limit int) {
		sameDecode(t, diffInput{subject: subject, data: data, opts: schemas.DecodeOptions{MaxParticipants: limit}})
	})
}
