package buildinfo

import "runtime/debug"

// version is set at link time with
// -ldflags "-X github.com/hangup-dev/hangup/internal/buildinfo.version=v1.2.3".
var version = ""

// Version returns the version set at link time, else the module version
// recorded by the go command, else "dev".
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// UserAgent is the User-Agent hangup sends to the vendor API.
func UserAgent() string { return "hangup/" + Version() }
