package schemas_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/hangup-dev/hangup/schemas"
)

// FuzzDecodeRequest feeds arbitrary subjects and payloads to DecodeRequest.
// The seed corpus is in testdata/fuzz/FuzzDecodeRequest. It checks that:
//   - it never panics, and every error is a *ValidationError;
//   - an accepted request has unique IDs within the limit and the subject's
//     conference ID, is valid by request.schema.json, and decodes to the same
//     Request once re-marshalled;
//   - a payload valid by the schema is refused only for a rule the schema
//     cannot express (see TestDecodeRequestAgreesWithSchema).
func FuzzDecodeRequest(f *testing.F) {
	sch := compileSchemas(f)[schemas.RequestSchema]
	opts := schemas.DecodeOptions{}
	f.Fuzz(func(t *testing.T, subject string, data []byte) {
		req, err := schemas.DecodeRequest(subject, data, opts)
		if err != nil {
			require.Nil(t, req)
			var verr *schemas.ValidationError
			require.ErrorAs(t, err, &verr)
			require.NotEmpty(t, verr.Problem)
			if len(data) > schemas.MaxPayloadBytes || !utf8.Valid(data) || validate(sch, data) != nil {
				return
			}
			// The schema accepts what DecodeRequest refused: only the
			// rules a schema cannot express may explain it.
			schemaOnly := verr.Field == "subject" ||
				strings.Contains(verr.Problem, "does not match the subject's last token") ||
				strings.Contains(verr.Problem, "appears more than once") ||
				strings.Contains(verr.Problem, "outside the years 0000 to 9999")
			require.True(t, schemaOnly, "schema accepts %q but DecodeRequest says: %v", data, err)
			return
		}

		token, ok := schemas.ConferenceIDFromSubject(subject, schemas.DefaultRequestSubjectPrefix)
		require.True(t, ok)
		require.Equal(t, token, req.ConferenceID)
		require.NotEmpty(t, req.ParticipantIDs)
		require.LessOrEqual(t, len(req.ParticipantIDs), schemas.DefaultMaxParticipants)
		seen := make(map[string]bool, len(req.ParticipantIDs))
		for _, id := range req.ParticipantIDs {
			require.False(t, seen[id], "repeated ID %q", id)
			seen[id] = true
		}
		require.NoError(t, validate(sch, data), "DecodeRequest accepts %q", data)

		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		require.NoError(t, enc.Encode(req))
		out := buf.Bytes()
		require.NoError(t, validate(sch, out))
		if len(out) > schemas.MaxPayloadBytes {
			// Re-encoding may escape U+2028 and U+2029 and so grow past
			// the limit; the limit is on what producers send.
			return
		}
		again, err := schemas.DecodeRequest(subject, out, opts)
		require.NoError(t, err, "re-marshalled: %s", out)
		require.Equal(t, req, again)
	})
}
