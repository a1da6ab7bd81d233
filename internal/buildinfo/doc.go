// Package buildinfo reports the version of hangup that is running. It owns
// nothing else.
package buildinfo
