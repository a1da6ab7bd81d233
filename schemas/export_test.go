package schemas

// ExpiresAtPattern exposes the Go pattern of expiresAt to the external tests,
// which compare it with request.schema.json.
var ExpiresAtPattern = expiresAtPattern.String()
