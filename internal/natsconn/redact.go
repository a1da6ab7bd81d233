package natsconn

import (
	"net/url"
	"strings"
)

// RedactURL returns urls, one or several comma-separated, fit for a log:
// a password in a URL is replaced by "xxxxx", and so is a user name given
// alone, which the NATS client sends as a token. An entry that is not a
// URL is replaced whole, as it may hold a secret.
func RedactURL(urls string) string {
	parts := strings.Split(urls, ",")
	for i, raw := range parts {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil {
			parts[i] = "[not a URL]"
			continue
		}
		if u.User != nil {
			if _, ok := u.User.Password(); ok {
				u.User = url.UserPassword(u.User.Username(), "xxxxx")
			} else {
				u.User = url.User("xxxxx")
			}
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}
