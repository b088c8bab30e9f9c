package main

import (
	"errors"
	"flag"
	"io"
	"os"
	"strings"
)

// newFlagSet returns a flag set whose usage names each flag's environment
// fallback.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func envName(flagName string) string {
	return "CLICKGATE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// renamed are flags renamed since an earlier build, old name to new: the
// old name, on the command line or in the environment, is refused with
// the new one, not taken for an unknown flag or ignored.
var renamed = map[string]string{
	"redis-commit-interval": "commit-interval",
}

// parseFlags parses args, then fills every flag not given on the command
// line from its CLICKGATE_* environment variable.
func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.VisitAll(func(f *flag.Flag) {
		f.Usage += " [$" + envName(f.Name) + "]"
	})
	for old, name := range renamed {
		if fs.Lookup(name) == nil {
			continue
		}
		for _, a := range args {
			if a == "--" {
				break
			}
			if n, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "="); n == old && strings.HasPrefix(a, "-") {
				return usageError("--%s was renamed --%s", old, name)
			}
		}
		if _, ok := os.LookupEnv(envName(old)); ok {
			return usageError("%s was renamed %s", envName(old), envName(name))
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError("%s", err) // a malformed flag exits 2, as every usage error
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = usageError("invalid %s=%q: %s", envName(f.Name), v, e)
			}
		}
	})
	return err
}

// splitID takes a leading positional argument (an id or code) off args, so
// that it may stand before the flags.
func splitID(args []string) (id string, rest []string) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return args[0], args[1:]
	}
	return "", args
}

func requireID(fs *flag.FlagSet, id, what string) (string, error) {
	if id == "" {
		id = fs.Arg(0)
	}
	if id == "" || fs.NArg() > 1 {
		return "", usageError("%s: want exactly one %s", fs.Name(), what)
	}
	return id, nil
}

func noArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return usageError("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}
