package ops

import (
	"fmt"
	"os"
	"strings"

	"github.com/hangup-dev/hangup/schemas"
)

// ReadTokenFile reads a control token from path: the file's content with
// surrounding white space removed, checked as the worker checks the
// X-Conference-Authorization header. Errors never quote the token.
func ReadTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if err := schemas.ValidateToken(token); err != nil {
		return "", fmt.Errorf("token file %s: %w", path, err)
	}
	return token, nil
}
