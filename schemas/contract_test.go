package schemas_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/hangup-dev/hangup/schemas"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

var schemaNames = []string{schemas.RequestSchema, schemas.ResultSchema, schemas.DeadLetterSchema}

// compileSchemas compiles the embedded schema files, asserting formats
// (date-time) and content (base64) as well as structure.
func compileSchemas(tb testing.TB) map[string]*jsonschema.Schema {
	tb.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	c.AssertContent()
	for _, name := range schemaNames {
		b, err := schemas.Schema(name)
		require.NoError(tb, err)
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		require.NoError(tb, err)
		require.NoError(tb, c.AddResource(schemas.SchemaBaseURL+name+".schema.json", doc))
	}
	compiled := make(map[string]*jsonschema.Schema, len(schemaNames))
	for _, name := range schemaNames {
		sch, err := c.Compile(schemas.SchemaBaseURL + name + ".schema.json")
		require.NoError(tb, err)
		compiled[name] = sch
	}
	return compiled
}

// validate checks a JSON document against a compiled schema.
func validate(sch *jsonschema.Schema, data []byte) error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return err
	}
	return sch.Validate(inst)
}

// schemaDoc is the part of a schema file the tests read.
type schemaDoc struct {
	Schema      string                     `json:"$schema"`
	ID          string                     `json:"$id"`
	Title       string                     `json:"title"`
	Description string                     `json:"description"`
	Required    []string                   `json:"required"`
	Properties  map[string]json.RawMessage `json:"properties"`
	Additional  bool                       `json:"additionalProperties"`
}

func readSchemaDoc(t *testing.T, name string) schemaDoc {
	t.Helper()
	b, err := schemas.Schema(name)
	require.NoError(t, err)
	var doc schemaDoc
	require.NoError(t, json.Unmarshal(b, &doc))
	return doc
}

func TestSchemaFiles(t *testing.T) {
	compileSchemas(t) // every schema compiles against the 2020-12 meta-schema
	for _, name := range schemaNames {
		t.Run(name, func(t *testing.T) {
			doc := readSchemaDoc(t, name)
			require.Equal(t, "https://json-schema.org/draft/2020-12/schema", doc.Schema)
			require.Equal(t, schemas.SchemaBaseURL+name+".schema.json", doc.ID)
			require.Contains(t, doc.ID, "/v"+strconv.Itoa(schemas.Version)+"/")
			require.NotEmpty(t, doc.Title)
			require.NotEmpty(t, doc.Description)
			for prop, raw := range doc.Properties {
				var p struct {
					Description string `json:"description"`
				}
				require.NoError(t, json.Unmarshal(raw, &p))
				require.NotEmpty(t, p.Description, "property %s has no description", prop)
			}
			// Only the request is closed; results and dead letters let
			// consumers tolerate future optional fields.
			require.Equal(t, name != schemas.RequestSchema, doc.Additional)

			withSuffix, err := schemas.Schema(name + ".schema.json")
			require.NoError(t, err)
			plain, err := schemas.Schema(name)
			require.NoError(t, err)
			require.Equal(t, plain, withSuffix)
		})
	}
	_, err := schemas.Schema("requests")
	require.ErrorContains(t, err, `schema "requests": unknown`)
}

// jsonFields returns the JSON names of a struct's fields and the names of
// those without omitempty.
func jsonFields(typ reflect.Type) (all, required []string) {
	for f := range typ.Fields() {
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		all = append(all, name)
		if !slices.Contains(strings.Split(opts, ","), "omitempty") {
			required = append(required, name)
		}
	}
	slices.Sort(all)
	slices.Sort(required)
	return all, required
}

func TestSchemasMatchGoTypes(t *testing.T) {
	types := map[string]reflect.Type{
		schemas.RequestSchema:    reflect.TypeFor[schemas.Request](),
		schemas.ResultSchema:     reflect.TypeFor[schemas.Result](),
		schemas.DeadLetterSchema: reflect.TypeFor[schemas.DeadLetter](),
	}
	for name, typ := range types {
		t.Run(name, func(t *testing.T) {
			doc := readSchemaDoc(t, name)
			all, required := jsonFields(typ)
			props := slices.Sorted(maps.Keys(doc.Properties))
			require.Equal(t, all, props, "JSON names of %s vs properties of %s.schema.json", typ, name)
			require.Equal(t, required, slices.Sorted(slices.Values(doc.Required)), "fields without omitempty of %s vs required of %s.schema.json", typ, name)
		})
	}
}

func TestExpiresAtPatternMatchesGo(t *testing.T) {
	var p struct {
		Pattern string `json:"pattern"`
	}
	require.NoError(t, json.Unmarshal(readSchemaDoc(t, schemas.RequestSchema).Properties["expiresAt"], &p))
	require.Equal(t, schemas.ExpiresAtPattern, p.Pattern)
}

func TestSchemaEnumsMatchGoConstants(t *testing.T) {
	enum := func(schema, prop string) []string {
		var p struct {
			Enum []string `json:"enum"`
		}
		require.NoError(t, json.Unmarshal(readSchemaDoc(t, schema).Properties[prop], &p))
		return p.Enum
	}
	require.Equal(t, []string{
		string(schemas.StatusSucceeded), string(schemas.StatusFailed), string(schemas.StatusExpired),
	}, enum(schemas.ResultSchema, "status"))
	require.Equal(t, []string{
		string(schemas.ReasonInvalidRequest), string(schemas.ReasonRejected),
		string(schemas.ReasonRetriesExhausted), string(schemas.ReasonMaxDeliveries),
	}, enum(schemas.DeadLetterSchema, "reason"))
}

// The populated values below set every field (for the dead letter, the two
// values together do: request and payloadBase64 exclude each other).

func populatedRequest() schemas.Request {
	expires := time.Date(2025, 6, 1, 12, 35, 0, 0, time.UTC)
	return schemas.Request{
		RequestID:      "3f2b9c1e-7a4d-4e8f-9b0a-5c6d7e8f9012",
		ConferenceID:   "914083136",
		ParticipantIDs: []string{"ba9acb1e216d11eabc5165c2b91ad427", "+8613800000001"},
		Reason:         "Meeting time is over.",
		RequestedBy:    "room-scheduler@example.com",
		ExpiresAt:      &expires,
		ReplayOf:       "3f2b9c1e-7a4d-4e8f-9b0a-5c6d7e8f9011",
	}
}

func populatedResult() schemas.Result {
	return schemas.Result{
		RequestID:            "req:2025-06-01:0003",
		ConferenceID:         "914083136",
		ParticipantIDs:       []string{"ba9acb1e216d11eabc5165c2b91ad427", "c47d2e0a216d11eabc5165c2b91ad427", "not-a-participant"},
		Status:               schemas.StatusFailed,
		Disconnected:         []string{"ba9acb1e216d11eabc5165c2b91ad427"},
		AlreadyGone:          []string{"c47d2e0a216d11eabc5165c2b91ad427"},
		FailedParticipantIDs: []string{"not-a-participant"},
		Attempts:             3,
		BatchIDs:             []string{"b-01J0ZK4A1B2C", "b-01J0ZK4A1B2D", "b-01J0ZK4A1B2E"},
		HTTPStatus:           400,
		ErrorCode:            "MMC.111071061",
		ErrorMessage:         "PARAM_ERROR",
		APIRequestID:         "9a8b7c6d5e4f40312a1b2c3d4e5f6071",
		ReceivedAt:           time.Date(2025, 6, 1, 12, 31, 10, 0, time.UTC),
		CompletedAt:          time.Date(2025, 6, 1, 12, 31, 11, 402_000_000, time.UTC),
		WorkerID:             "hangup-worker-7c9f4-x2kq",
		ReplayOf:             "req:2025-06-01:0002",
	}
}

func populatedDeadLetter() schemas.DeadLetter {
	return schemas.DeadLetter{
		Reason:         schemas.ReasonRejected,
		Error:          "the meeting does not exist (MMC.111070005, HTTP 400); check conferenceID 914083136",
		RequestID:      "req:2025-06-01:0006",
		ConferenceID:   "914083136",
		Subject:        testSubject,
		StreamSequence: 1044,
		Deliveries:     1,
		Request:        json.RawMessage(`{"requestID":"req:2025-06-01:0006","conferenceID":"914083136","participantIDs":["ba9acb1e216d11eabc5165c2b91ad427"]}`),
		Headers: map[string][]string{
			schemas.MsgIDHeader: {"req:2025-06-01:0006"},
			schemas.TokenHeader: {"REDACTED"},
		},
		ReceivedAt:     time.Date(2025, 6, 1, 13, 0, 0, 0, time.UTC),
		DeadLetteredAt: time.Date(2025, 6, 1, 13, 0, 0, 350_000_000, time.UTC),
		WorkerID:       "hangup-worker-7c9f4-x2kq",
	}
}

func populatedBinaryDeadLetter() schemas.DeadLetter {
	dl := populatedDeadLetter()
	dl.Reason = schemas.ReasonInvalidRequest
	dl.Error = "payload is not valid UTF-8 (first bad byte at offset 0)"
	dl.Request = nil
	dl.PayloadBase64 = "/9j/4AAQSkZJRgABAQ=="
	return dl
}

// requireAllFieldsSet fails unless every field of the struct is set in at
// least one of the values.
func requireAllFieldsSet(t *testing.T, values ...any) {
	t.Helper()
	typ := reflect.TypeOf(values[0])
	for i := range typ.NumField() {
		set := false
		for _, v := range values {
			set = set || !reflect.ValueOf(v).Field(i).IsZero()
		}
		require.True(t, set, "%s.%s is not populated", typ.Name(), typ.Field(i).Name)
	}
}

func TestPopulatedValuesValidate(t *testing.T) {
	compiled := compileSchemas(t)
	tests := []struct {
		name   string
		schema string
		values []any
	}{
		{"request", schemas.RequestSchema, []any{populatedRequest()}},
		{"result", schemas.ResultSchema, []any{populatedResult()}},
		{"dead letter", schemas.DeadLetterSchema, []any{populatedDeadLetter(), populatedBinaryDeadLetter()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requireAllFieldsSet(t, tt.values...)
			for _, v := range tt.values {
				b, err := json.Marshal(v)
				require.NoError(t, err)
				require.NoError(t, validate(compiled[tt.schema], b), "%s", b)
			}
		})
	}

	t.Run("request decodes back", func(t *testing.T) {
		want := populatedRequest()
		b, err := json.Marshal(want)
		require.NoError(t, err)
		got, err := schemas.DecodeRequest(testSubject, b, schemas.DecodeOptions{})
		require.NoError(t, err)
		require.Equal(t, &want, got)
	})
}

func TestResultMarshalsEmptyListsAsArrays(t *testing.T) {
	r := schemas.Result{
		RequestID:      "req-1",
		ConferenceID:   "914083136",
		ParticipantIDs: []string{"a1"},
		Status:         schemas.StatusExpired,
		ReceivedAt:     time.Date(2025, 6, 1, 12, 40, 0, 0, time.UTC),
		CompletedAt:    time.Date(2025, 6, 1, 12, 46, 0, 0, time.UTC),
		WorkerID:       "w1",
	}
	b, err := json.Marshal(r)
	require.NoError(t, err)
	require.JSONEq(t, `{
		"requestID": "req-1", "conferenceID": "914083136", "participantIDs": ["a1"], "status": "expired",
		"disconnected": [], "alreadyGone": [], "failedParticipantIDs": [], "attempts": 0, "batchIDs": [],
		"receivedAt": "2025-06-01T12:40:00Z", "completedAt": "2025-06-01T12:46:00Z", "workerID": "w1"
	}`, string(b))
	require.NoError(t, validate(compileSchemas(t)[schemas.ResultSchema], b))

	// A pointer marshals the same way, and the caller's value is untouched.
	bp, err := json.Marshal(&r)
	require.NoError(t, err)
	require.Equal(t, b, bp)
	require.Nil(t, r.Disconnected)
}

// TestSchemasRefuse shows that the constraints beyond types are live.
func TestSchemasRefuse(t *testing.T) {
	compiled := compileSchemas(t)
	mutate := func(v any, edit func(map[string]any)) []byte {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(b, &m))
		edit(m)
		b, err = json.Marshal(m)
		require.NoError(t, err)
		return b
	}
	tests := []struct {
		name   string
		schema string
		doc    []byte
	}{
		{"result with unknown status", schemas.ResultSchema, mutate(populatedResult(), func(m map[string]any) { m["status"] = "partial" })},
		{"failed result without failed IDs", schemas.ResultSchema, mutate(populatedResult(), func(m map[string]any) { m["failedParticipantIDs"] = []string{} })},
		{"succeeded result with failed IDs", schemas.ResultSchema, mutate(populatedResult(), func(m map[string]any) { m["status"] = "succeeded" })},
		{"result with null list", schemas.ResultSchema, mutate(populatedResult(), func(m map[string]any) { m["alreadyGone"] = nil })},
		{"result with repeated IDs", schemas.ResultSchema, mutate(populatedResult(), func(m map[string]any) { m["disconnected"] = []string{"a", "a"} })},
		{"result with local time", schemas.ResultSchema, mutate(populatedResult(), func(m map[string]any) { m["completedAt"] = "2025-06-01T12:31:11" })},
		{"result without workerID", schemas.ResultSchema, mutate(populatedResult(), func(m map[string]any) { delete(m, "workerID") })},
		{"dead letter with unknown reason", schemas.DeadLetterSchema, mutate(populatedDeadLetter(), func(m map[string]any) { m["reason"] = "timeout" })},
		{"dead letter with request and payloadBase64", schemas.DeadLetterSchema, mutate(populatedDeadLetter(), func(m map[string]any) { m["payloadBase64"] = "e30=" })},
		{"dead letter with bad base64", schemas.DeadLetterSchema, mutate(populatedBinaryDeadLetter(), func(m map[string]any) { m["payloadBase64"] = "not base64!" })},
		{"dead letter with a header that is not a list", schemas.DeadLetterSchema, mutate(populatedDeadLetter(), func(m map[string]any) { m["headers"] = map[string]any{"a": "b"} })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Error(t, validate(compiled[tt.schema], tt.doc), "%s", tt.doc)
		})
	}
	// A future optional field does not break consumers of results and dead
	// letters.
	require.NoError(t, validate(compiled[schemas.ResultSchema], mutate(populatedResult(), func(m map[string]any) { m["region"] = "cn-north-4" })))
	require.NoError(t, validate(compiled[schemas.DeadLetterSchema], mutate(populatedDeadLetter(), func(m map[string]any) { m["region"] = "cn-north-4" })))
}

// schemaForExample maps an example file to its schema by name prefix.
func schemaForExample(file string) string {
	for _, name := range schemaNames {
		if strings.HasPrefix(filepath.Base(file), name) {
			return name
		}
	}
	return ""
}

func TestExamples(t *testing.T) {
	compiled := compileSchemas(t)
	files, err := fs.Glob(schemas.Files, "examples/*.json")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 6)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := fs.ReadFile(schemas.Files, file)
			require.NoError(t, err)
			name := schemaForExample(file)
			require.NotEmpty(t, name, "name the example after its schema")
			require.NoError(t, validate(compiled[name], data))

			// The Go type reads every field of the example and writes it back.
			var v any
			switch name {
			case schemas.RequestSchema:
				v = new(schemas.Request)
			case schemas.ResultSchema:
				v = new(schemas.Result)
			case schemas.DeadLetterSchema:
				v = new(schemas.DeadLetter)
			}
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.DisallowUnknownFields()
			require.NoError(t, dec.Decode(v))
			back, err := json.Marshal(v)
			require.NoError(t, err)
			require.JSONEq(t, string(data), string(back))

			switch ex := v.(type) {
			case *schemas.Request:
				got, err := schemas.DecodeRequest(schemas.DefaultRequestSubjectPrefix+"."+ex.ConferenceID, data, schemas.DecodeOptions{})
				require.NoError(t, err)
				require.Equal(t, ex, got)
			case *schemas.DeadLetter:
				// The error of an invalid request is what DecodeRequest says.
				if ex.Reason == schemas.ReasonInvalidRequest && ex.Request != nil {
					_, err := schemas.DecodeRequest(ex.Subject, ex.Request, schemas.DecodeOptions{})
					require.EqualError(t, err, ex.Error)
				}
			}
		})
	}
}

func TestGoldenEvents(t *testing.T) {
	compiled := compileSchemas(t)
	tests := []struct {
		file   string
		schema string
		value  any
	}{
		{"result.golden.json", schemas.ResultSchema, populatedResult()},
		{"deadletter.golden.json", schemas.DeadLetterSchema, populatedDeadLetter()},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := json.MarshalIndent(tt.value, "", "  ")
			require.NoError(t, err)
			got = append(got, '\n')
			path := filepath.Join("testdata", tt.file)
			if *update {
				require.NoError(t, os.WriteFile(path, got, 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "run go test ./schemas -run TestGoldenEvents -update to create it")
			require.Equal(t, string(want), string(got), "the wire form changed; if on purpose, run with -update and note it in the CHANGELOG")
			require.NoError(t, validate(compiled[tt.schema], want))
		})
	}
}

// TestDecodeRequestAgreesWithSchema checks that DecodeRequest accepts a
// payload exactly when request.schema.json does, apart from the rules a
// schema cannot express, which are listed in the exceptions table.
func TestDecodeRequestAgreesWithSchema(t *testing.T) {
	sch := compileSchemas(t)[schemas.RequestSchema]
	agree := []struct {
		name    string
		payload string
		valid   bool
	}{
		{"minimal", payload(`["a1"]`), true},
		{"every field", payload(`["a1","b2"]`, `,"reason":"fin ✔","requestedBy":"ops","expiresAt":"2025-06-01T12:30:00.5+02:00"`), true},
		{"lowercase t and z", payload(`["a1"]`, `,"expiresAt":"2025-06-01t12:30:00z"`), true},
		{"reason with ordinary unicode", payload(`["a1"]`, `,"reason":"Zeit ist um – 会议结束"`), true},
		{"empty reason", payload(`["a1"]`, `,"reason":""`), true},
		{"500 IDs", payload(idList(500, 8)), true},
		{"limits", `{"requestID":"` + strings.Repeat("r", 128) + `","conferenceID":"914083136","participantIDs":["` + strings.Repeat("!", 128) + `"],"reason":"` + strings.Repeat("é", 1024) + `","requestedBy":"` + strings.Repeat("ü", 256) + `"}`, true},
		{"not an object", `["a1"]`, false},
		{"empty object", `{}`, false},
		{"trailing data", payload(`["a1"]`) + `{}`, false},
		{"unknown field", payload(`["a1"]`, `,"dryRun":true`), false},
		{"null field", payload(`["a1"]`, `,"reason":null`), false},
		{"number requestID", `{"requestID":1,"conferenceID":"914083136","participantIDs":["a1"]}`, false},
		{"empty requestID", `{"requestID":"","conferenceID":"914083136","participantIDs":["a1"]}`, false},
		{"long requestID", `{"requestID":"` + strings.Repeat("r", 129) + `","conferenceID":"914083136","participantIDs":["a1"]}`, false},
		{"requestID with slash", `{"requestID":"a/b","conferenceID":"914083136","participantIDs":["a1"]}`, false},
		{"requestID with newline at the end", `{"requestID":"ab\n","conferenceID":"914083136","participantIDs":["a1"]}`, false},
		{"conferenceID with dot", `{"requestID":"r","conferenceID":"914.083136","participantIDs":["a1"]}`, false},
		{"conferenceID with star", `{"requestID":"r","conferenceID":"*","participantIDs":["a1"]}`, false},
		{"long conferenceID", `{"requestID":"r","conferenceID":"` + strings.Repeat("c", 65) + `","participantIDs":["a1"]}`, false},
		{"no IDs", payload(`[]`), false},
		{"501 IDs", payload(idList(501, 8)), false},
		{"ID with space", payload(`["a b"]`), false},
		{"ID with DEL", payload(`["a\u007f"]`), false},
		{"ID not ASCII", payload(`["é"]`), false},
		{"empty ID", payload(`[""]`), false},
		{"long ID", payload(`["` + strings.Repeat("p", 129) + `"]`), false},
		{"ID a number", payload(`[1]`), false},
		{"reason with tab", payload(`["a1"]`, `,"reason":"a\tb"`), false},
		{"reason with C1", payload(`["a1"]`, `,"reason":"a\u009fb"`), false},
		{"long reason", payload(`["a1"]`, `,"reason":"`+strings.Repeat("é", 1025)+`"`), false},
		{"long requestedBy", payload(`["a1"]`, `,"requestedBy":"`+strings.Repeat("u", 257)+`"`), false},
		{"expiresAt without zone", payload(`["a1"]`, `,"expiresAt":"2025-06-01T12:30:00"`), false},
		{"expiresAt with space", payload(`["a1"]`, `,"expiresAt":"2025-06-01 12:30:00Z"`), false},
		{"expiresAt February 30", payload(`["a1"]`, `,"expiresAt":"2025-02-30T12:30:00Z"`), false},
		{"expiresAt hour 24", payload(`["a1"]`, `,"expiresAt":"2025-06-01T24:00:00Z"`), false},
		{"expiresAt minute 60", payload(`["a1"]`, `,"expiresAt":"2025-06-01T12:60:00Z"`), false},
		{"expiresAt leap second", payload(`["a1"]`, `,"expiresAt":"2016-12-31T23:59:60Z"`), false},
		{"expiresAt offset hour 24", payload(`["a1"]`, `,"expiresAt":"2025-06-01T12:30:00+24:00"`), false},
		{"expiresAt offset minute 60", payload(`["a1"]`, `,"expiresAt":"2025-06-01T12:30:00+01:60"`), false},
		{"expiresAt without seconds", payload(`["a1"]`, `,"expiresAt":"2025-06-01T12:30Z"`), false},
		{"expiresAt empty fraction", payload(`["a1"]`, `,"expiresAt":"2025-06-01T12:30:00.Z"`), false},
		{"expiresAt comma fraction", payload(`["a1"]`, `,"expiresAt":"2025-06-01T12:30:00,5Z"`), false},
		{"replayOf", payload(`["a1"]`, `,"replayOf":"req:0.r1"`), true},
		{"long replayOf", payload(`["a1"]`, `,"replayOf":"`+strings.Repeat("r", 128)+`"`), true},
		{"empty replayOf", payload(`["a1"]`, `,"replayOf":""`), false},
		{"too long replayOf", payload(`["a1"]`, `,"replayOf":"`+strings.Repeat("r", 129)+`"`), false},
		{"replayOf with space", payload(`["a1"]`, `,"replayOf":"a b"`), false},
		{"replayOf a number", payload(`["a1"]`, `,"replayOf":1`), false},
	}
	for _, tt := range agree {
		t.Run(tt.name, func(t *testing.T) {
			_, decodeErr := schemas.DecodeRequest(testSubject, []byte(tt.payload), schemas.DecodeOptions{})
			schemaErr := validate(sch, []byte(tt.payload))
			require.Equal(t, tt.valid, decodeErr == nil, "DecodeRequest: %v", decodeErr)
			require.Equal(t, tt.valid, schemaErr == nil, "schema: %v", schemaErr)
		})
	}

	// Rules a schema cannot express. The schema accepts these payloads;
	// DecodeRequest refuses them (or, for repeats, changes them).
	exceptions := []struct {
		name    string
		subject string
		payload string
		wantErr string // "" when DecodeRequest accepts
	}{
		{"subject does not match conferenceID", schemas.DefaultRequestSubjectPrefix + ".123", payload(`["a1"]`), "does not match the subject's last token"},
		{"subject under another prefix", "other.914083136", payload(`["a1"]`), "subject: "},
		{"duplicate key", testSubject, `{"requestID":"a","requestID":"b","conferenceID":"914083136","participantIDs":["a1"]}`, "appears more than once"},
		{"payload over 64 KiB", testSubject, payload(idList(500, 128)), "the limit is 65536 bytes"},
		{"invalid UTF-8 (a JSON parser reads it as U+FFFD)", testSubject, payload(`["a1"]`, `,"reason":"`+"\xff"+`"`), "not valid UTF-8"},
		{"expiresAt before year 0 in UTC", testSubject, payload(`["a1"]`, `,"expiresAt":"0000-01-01T00:30:00+01:00"`), "outside the years 0000 to 9999"},
		{"repeated IDs are removed, not refused", testSubject, payload(`["a1","a1"]`), ""},
	}
	for _, tt := range exceptions {
		t.Run("exception/"+tt.name, func(t *testing.T) {
			require.NoError(t, validate(sch, []byte(tt.payload)))
			req, err := schemas.DecodeRequest(tt.subject, []byte(tt.payload), schemas.DecodeOptions{})
			if tt.wantErr == "" {
				require.NoError(t, err)
				require.Equal(t, []string{"a1"}, req.ParticipantIDs)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}
