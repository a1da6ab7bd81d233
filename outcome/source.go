package outcome

import (
	"encoding/base64"
	"encoding/json"
	"net/textproto"
	"strings"
	"time"

	"github.com/hangup-dev/hangup/schemas"
)

// Redacted replaces the value of a header that carries a secret; it is
// schemas.Redacted.
const Redacted = schemas.Redacted

// Source is the original request message as the consumer received it: what
// a dead letter must carry for an operator to act on it.
type Source struct {
	// Stream is the name of the stream the message was stored in.
	Stream         string
	Subject        string
	StreamSequence uint64
	Deliveries     uint64
	Payload        []byte
	// Headers are the message headers as received; secrets are removed when
	// a dead letter is built, never earlier, so the worker can still use them.
	Headers    map[string][]string
	ReceivedAt time.Time
}

// secretHeaders are redacted by canonical name. Any header whose name
// mentions a token, password, secret or authorization is redacted too.
var secretHeaders = map[string]bool{
	textproto.CanonicalMIMEHeaderKey(schemas.TokenHeader): true,
	"X-Password":    true,
	"Authorization": true,
}

// IsSecretHeader reports whether a header's value must never leave the
// worker.
func IsSecretHeader(name string) bool {
	if secretHeaders[textproto.CanonicalMIMEHeaderKey(name)] {
		return true
	}
	n := strings.ToLower(name)
	for _, w := range []string{"token", "password", "secret", "authorization", "credential"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// RedactHeaders returns a copy of h in which the value of every secret
// header is replaced by Redacted. A nil or empty h gives nil.
func RedactHeaders(h map[string][]string) map[string][]string {
	if len(h) == 0 {
		return nil
	}
	out := make(map[string][]string, len(h))
	for k, vs := range h {
		if IsSecretHeader(k) {
			out[k] = []string{Redacted}
			continue
		}
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// DeadLetter builds the dead letter of the source message. The payload is
// kept as JSON when it parses as JSON, else base64-encoded.
func (s Source) DeadLetter(reason schemas.DeadLetterReason, errText string, now time.Time, workerID string) *schemas.DeadLetter {
	dl := &schemas.DeadLetter{
		Reason:         reason,
		Error:          errText,
		Subject:        s.Subject,
		StreamSequence: s.StreamSequence,
		Deliveries:     s.Deliveries,
		Headers:        RedactHeaders(s.Headers),
		ReceivedAt:     s.ReceivedAt.UTC(),
		DeadLetteredAt: now.UTC(),
		WorkerID:       workerID,
	}
	if len(s.Payload) > 0 && json.Valid(s.Payload) {
		dl.Request = json.RawMessage(append([]byte(nil), s.Payload...))
	} else {
		dl.PayloadBase64 = base64.StdEncoding.EncodeToString(s.Payload)
	}
	return dl
}
