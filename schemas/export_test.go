package schemas

// ExpiresAtPattern exposes the Go pattern of expiresAt to the external tests,
// which compare it with request.schema.json.
var ExpiresAtPattern = expiresAtPattern.String()

// DecodeRequestFast is DecodeRequest by the fast path alone; ok is false
// when the fast path leaves data to the slow one.
func DecodeRequestFast(subject string, data []byte, opts DecodeOptions) (req *Request, verr *ValidationError, ok bool) {
	if checkPayload(data) != nil {
		return nil, nil, false
	}
	return decodeRequestFast(subject, data, opts.withDefaults())
}

// DecodeRequestSlow is DecodeRequest by the slow path alone, the reference
// for the fast one.
func DecodeRequestSlow(subject string, data []byte, opts DecodeOptions) (*Request, *ValidationError) {
	if verr := checkPayload(data); verr != nil {
		return nil, verr
	}
	return decodeRequestSlow(subject, data, opts.withDefaults())
}

// HasExpiresAtShape is the matcher that stands in for ExpiresAtPattern.
var HasExpiresAtShape = hasExpiresAtShape
