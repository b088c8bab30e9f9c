package main

import (
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"

	"github.com/clickgate/clickgate/counter/boltstore"
	"github.com/clickgate/clickgate/counter/spool"
	"github.com/clickgate/clickgate/counter/visitlog"
)

// storeCmd runs "clickgate store salvage": with the node stopped, it
// rewrites each segment of the embedded store's visit log and of the spool
// that damage keeps from opening (see visitlog.Salvage and spool.Salvage),
// and says what it kept and dropped.
func storeCmd(args []string, stdout, stderr io.Writer) error {
	_, args, err := subcommand("store", args, stdout)
	if err != nil {
		return err
	}
	flags := newFlagSet("store salvage", stderr)
	data := flags.String("data", "./data", "data directory: the embedded store is DATA/store")
	spoolDir := flags.String("spool", "", "the spool's directory, as given to serve (default DATA/spool)")
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	if err := noArgs(flags); err != nil {
		return err
	}
	explicit := *spoolDir != ""
	if !explicit {
		*spoolDir = filepath.Join(*data, "spool")
	}
	var done []visitlog.Salvaged
	// What was rewritten is said even when a later part fails.
	defer func() {
		for _, s := range done {
			fmt.Fprintf(stdout, "%s: damaged at byte offset %d; kept %d whole records after it, dropped %d bytes (what they held is lost); the segment as it was is %s\n",
				s.Segment, s.Damage, s.Kept, s.Dropped, s.Original)
		}
	}()
	found := false
	for _, part := range []struct {
		what, dir string
		salvage   func(string) ([]visitlog.Salvaged, error)
	}{
		{"the embedded store's visit log", filepath.Join(*data, "store"), boltstore.Salvage},
		{"the spool", *spoolDir, spool.Salvage},
	} {
		if _, err := os.Stat(part.dir); errors.Is(err, iofs.ErrNotExist) {
			if explicit && part.dir == *spoolDir {
				return fmt.Errorf("no spool in %q", part.dir)
			}
			continue
		}
		found = true
		d, err := part.salvage(part.dir)
		done = append(done, d...)
		if err != nil {
			return fmt.Errorf("cannot salvage %s: %w", part.what, err)
		}
	}
	if !found {
		return fmt.Errorf("nothing to salvage: no embedded store in %q and no spool in %q", filepath.Join(*data, "store"), *spoolDir)
	}
	if len(done) == 0 {
		fmt.Fprintln(stdout, "the visit log and the spool open as they are: nothing to salvage")
	}
	return nil
}
