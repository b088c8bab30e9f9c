package main

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/clickgate/clickgate/counter/boltstore"
)

// storeCmd runs "clickgate store salvage": with the node stopped, it
// rewrites each segment of the embedded store's visit log that damage to
// visits not yet judged keeps from opening (see visitlog.Salvage), and
// says what it kept and dropped.
func storeCmd(args []string, stdout, stderr io.Writer) error {
	_, args, err := subcommand("store", args, stdout)
	if err != nil {
		return err
	}
	fs := newFlagSet("store salvage", stderr)
	data := fs.String("data", "./data", "data directory: the embedded store is DATA/store")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	done, err := boltstore.Salvage(filepath.Join(*data, "store"))
	if err != nil {
		return fmt.Errorf("cannot salvage the visit log: %w", err)
	}
	if len(done) == 0 {
		fmt.Fprintln(stdout, "the visit log opens as it is: nothing to salvage")
	}
	for _, s := range done {
		fmt.Fprintf(stdout, "%s: damaged at byte offset %d; kept %d whole records after it, dropped %d bytes (their visits are lost); the segment as it was is %s\n",
			s.Segment, s.Damage, s.Kept, s.Dropped, s.Original)
	}
	return nil
}
