package schemas_test

import (
	"math/rand/v2"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hangup-dev/hangup/schemas"
)

// expiresAtVariants returns date-times and, for each, every variant with
// one character replaced, removed or added, and random ones.
func expiresAtVariants() []string {
	bases := []string{
		"2025-06-01T12:30:00Z", "2025-06-01t12:30:00z", "2025-06-01T12:30:00.5+02:00",
		"0000-01-01T00:00:00-23:59", "9999-12-31T23:59:59.123456789+19:05", "2016-12-31T23:59:60Z",
		"2025-06-01T12:30:00+24:00", "2025-06-01T12:30:00", "2025-06-01T12:30:00.Z",
	}
	const alphabet = "0123456789-:.TtZz+ x\n2359é"
	variants := append([]string(nil), bases...)
	for _, b := range bases {
		for i := 0; i <= len(b); i++ {
			if i < len(b) {
				variants = append(variants, b[:i]+b[i+1:])
			}
			for _, c := range alphabet {
				variants = append(variants, b[:i]+string(c)+b[i:])
				if i < len(b) {
					variants = append(variants, b[:i]+string(c)+b[i+1:])
				}
			}
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		b := []byte(bases[rng.IntN(len(bases))])
		for range 1 + rng.IntN(4) {
			b[rng.IntN(len(b))] = alphabet[rng.IntN(len(alphabet))]
		}
		variants = append(variants, string(b))
	}
	return variants
}

func TestHasExpiresAtShapeMatchesPattern(t *testing.T) {
	pattern := regexp.MustCompile(schemas.ExpiresAtPattern)
	matched := 0
	for _, s := range expiresAtVariants() {
		want := pattern.MatchString(s)
		require.Equal(t, want, schemas.HasExpiresAtShape(s), "%q", s)
		if want {
			matched++
		}
	}
	require.Greater(t, matched, 1000)
}

func FuzzHasExpiresAtShapeMatchesPattern(f *testing.F) {
	for _, s := range expiresAtVariants()[:200] {
		f.Add(s)
	}
	pattern := regexp.MustCompile(schemas.ExpiresAtPattern)
	f.Fuzz(func(t *testing.T, s string) {
		require.Equal(t, pattern.MatchString(s), schemas.HasExpiresAtShape(s), "%q", s)
	})
}
