package main

import (
	"runtime/debug"
	"testing"
)

func TestBuildVersion(t *testing.T) {
	f := func(set string, info *debug.BuildInfo, want string) {
		t.Helper()
		got := buildVersion(set, func() (*debug.BuildInfo, bool) { return info, info != nil })
		if got != want {
			t.Fatalf("unexpected version for %q and %+v; got %q; want %q", set, info, got, want)
		}
	}
	vcs := func(main string, kv ...string) *debug.BuildInfo {
		bi := &debug.BuildInfo{Main: debug.Module{Version: main}}
		for i := 0; i < len(kv); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return bi
	}
	f("v1.4.0", vcs("(devel)", "vcs.revision", "a54a500abcdef0123"), "v1.4.0")
	f("dev", nil, "dev")
	f("dev", vcs("v1.2.3"), "v1.2.3")
	f("dev", vcs("v0.0.0-20261130124100-a54a500abcde+dirty"), "v0.0.0-20261130124100-a54a500abcde+dirty")
	f("dev", vcs("(devel)", "vcs.revision", "a54a500abcdef0123", "vcs.modified", "false"), "a54a500abcde")
	f("dev", vcs("(devel)", "vcs.revision", "a54a500abcdef0123", "vcs.modified", "true"), "a54a500abcde-dirty")
	f("dev", vcs("(devel)"), "dev")
	f("", vcs(""), "dev")
}
