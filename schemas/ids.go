package schemas

// ValidateRequestID checks a request ID: 1 to 128 characters, each a
// letter, a digit, ".", "_", ":" or "-".
func ValidateRequestID(id string) error {
	if err := validateRequestID(id); err != nil {
		return err
	}
	return nil
}
