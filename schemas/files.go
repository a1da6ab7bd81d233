package schemas

import (
	"embed"
	"fmt"
	"io/fs"
	"strings"
)

// Files holds the JSON Schema files (draft 2020-12) of the event contract at
// its root (request.schema.json, result.schema.json,
// deadletter.schema.json) and example events under examples/.
//
//go:embed request.schema.json result.schema.json deadletter.schema.json examples/*.json
var Files embed.FS

// SchemaBaseURL is the base of every schema's $id: the $id of
// request.schema.json is SchemaBaseURL + "request.schema.json".
const SchemaBaseURL = "https://hangup.dev/schemas/v1/"

// Schema names accepted by [Schema].
const (
	RequestSchema    = "request"
	ResultSchema     = "result"
	DeadLetterSchema = "deadletter"
)

// Schema returns the JSON Schema of one event: name is "request", "result"
// or "deadletter", with or without the ".schema.json" suffix. Each call
// returns a fresh copy.
func Schema(name string) ([]byte, error) {
	base := strings.TrimSuffix(name, ".schema.json")
	switch base {
	case RequestSchema, ResultSchema, DeadLetterSchema:
	default:
		return nil, fmt.Errorf("schema %q: unknown; the schemas are %s, %s and %s", name, RequestSchema, ResultSchema, DeadLetterSchema)
	}
	b, err := fs.ReadFile(Files, base+".schema.json")
	if err != nil {
		return nil, fmt.Errorf("schema %q: %w", name, err)
	}
	return b, nil
}
