package main

import "runtime/debug"

func init() { version = buildVersion(version, debug.ReadBuildInfo) }

// buildVersion is the version of this build: the one set with -ldflags
// "-X main.version=..." (make build, the Dockerfile), or else what the Go
// toolchain recorded: the module's version, which for a go build in a
// clone is a pseudo-version naming the commit
// (v0.0.0-20261130124100-a54a500abcde, "+dirty" when the tree had
// changes), or the commit itself. "dev" only when there is neither (go
// build -buildvcs=false, or a tree without git).
func buildVersion(set string, read func() (*debug.BuildInfo, bool)) string {
	if set != "" && set != "dev" {
		return set
	}
	info, ok := read()
	if !ok {
		return "dev"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch {
		case s.Key == "vcs.revision":
			rev = s.Value
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "-dirty"
		}
	}
	if rev == "" {
		return "dev"
	}
	return rev[:min(12, len(rev))] + dirty
}
