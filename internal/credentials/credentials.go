package credentials

import (
	"encoding/json"
	"errors"

	"go.uber.org/zap/zapcore"

	"github.com/hangup-dev/hangup/dispatcher"
	"github.com/hangup-dev/hangup/schemas"
)

// ErrNoCredentials means the bucket holds no usable host password for a
// conference: the key is missing, or (see [ErrInvalidCredentials]) its value
// is unusable. It is the dispatcher's sentinel, so the dispatcher fails
// such requests instead of handing them back for later.
var ErrNoCredentials = dispatcher.ErrNoCredentials

// ErrInvalidCredentials means the value stored for a conference is not
// {"hostPassword": "<non-empty string>"}. An error that wraps it also
// matches [ErrNoCredentials] under errors.Is.
var ErrInvalidCredentials error = invalidCredentialsError{}

type invalidCredentialsError struct{}

func (invalidCredentialsError) Error() string { return "invalid credentials" }

// Is makes ErrInvalidCredentials match ErrNoCredentials.
func (invalidCredentialsError) Is(target error) bool { return target == ErrNoCredentials }

// Credentials is the value stored in the bucket under a conference ID.
// Its String, GoString and MarshalLogObject methods hide the password;
// only json.Marshal, which writes the stored form, shows it.
type Credentials struct {
	// HostPassword is the meeting's host password, sent as X-Password to
	// obtain a control token.
	HostPassword string `json:"hostPassword"`
}

// String describes c without its password.
func (c Credentials) String() string {
	return "Credentials{HostPassword: " + hidden(c.HostPassword) + "}"
}

// GoString describes c without its password, for %#v.
func (c Credentials) GoString() string { return "credentials." + c.String() }

// MarshalLogObject logs c without its password, for zap.Any and
// zap.Object.
func (c Credentials) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("hostPassword", hidden(c.HostPassword))
	return nil
}

func hidden(secret string) string {
	if secret == "" {
		return `""`
	}
	return schemas.Redacted
}

// Reasons a stored value is unusable. They never quote the value.
var (
	errNotObject   = errors.New(`value is not a JSON object of the form {"hostPassword": "..."}`)
	errNotString   = errors.New("hostPassword is not a string")
	errNoPassword  = errors.New("hostPassword is missing or empty")
	decodeFailures = []error{errNotObject, errNotString, errNoPassword}
)

// decodeCredentials decodes a stored value. Its errors are one of
// decodeFailures and never hold any part of value; fields other than
// hostPassword are ignored.
func decodeCredentials(value []byte) (Credentials, error) {
	var c struct {
		HostPassword *string `json:"hostPassword"`
	}
	if err := json.Unmarshal(value, &c); err != nil {
		// The json errors quote characters of the value: never pass them on.
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && te.Field == "hostPassword" {
			return Credentials{}, errNotString
		}
		return Credentials{}, errNotObject
	}
	if c.HostPassword == nil || *c.HostPassword == "" {
		return Credentials{}, errNoPassword
	}
	return Credentials{HostPassword: *c.HostPassword}, nil
}
