package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// plan is the loopback stand-in for the compose network: every service's
// container ports mapped to free loopback ports, its volumes to
// directories, and the processes it runs.
type plan struct {
	root     string
	services []*service
	byName   map[string]*service
	img      *image
	bin      string
	ports    map[string]map[string]string // service: container port: loopback port
	oneShot  map[string]bool              // services that others wait on to complete

	mu      sync.Mutex
	running []*proc // long-running, in start order
}

func newPlan(t *testing.T, root string, services []*service, img *image, bin string) *plan {
	t.Helper()
	pl := &plan{root: root, services: services, byName: map[string]*service{}, img: img, bin: bin,
		ports: map[string]map[string]string{}, oneShot: map[string]bool{}}
	for _, s := range services {
		pl.byName[s.name] = s
	}
	for _, s := range services {
		for d, cond := range s.dependsOn {
			if pl.byName[d] == nil {
				t.Fatalf("service %s depends on unknown service %s", s.name, d)
			}
			switch cond {
			case "service_completed_successfully":
				pl.oneShot[d] = true
			case "service_started", "service_healthy":
			default:
				t.Fatalf("service %s: unknown condition %q", s.name, cond)
			}
		}
		// Loopback has one address for every service, so a bare address
		// of another service would reach the wrong one unnoticed.
		toks := append(slices.Clone(s.command), s.health...)
		for _, v := range s.env {
			toks = append(toks, v)
		}
		for _, tok := range toks {
			for _, o := range services {
				if o != s && (tok == o.name || tok == o.ip && o.ip != "") {
					t.Fatalf("service %s names %s's address %q without a port; the check maps only NAME:PORT of other services", s.name, o.name, tok)
				}
			}
		}
		pl.ports[s.name] = map[string]string{}
		for _, cp := range s.ports {
			pl.ports[s.name][cp] = freePort(t)
		}
		for _, v := range pl.volumes(s) {
			if err := os.MkdirAll(pl.volumeDir(s, v), 0o700); err != nil {
				t.Fatal(err)
			}
		}
	}
	return pl
}

// freePort returns a loopback port that is free, and whose port+10000 (a
// Redis Cluster node's bus) is free too.
func freePort(t *testing.T) string {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		if p+10000 > 65535 {
			l.Close()
			continue
		}
		bus, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+10000))
		l.Close()
		if err == nil {
			bus.Close()
			return strconv.Itoa(p)
		}
	}
	t.Fatal("no free loopback port with a free port+10000")
	return ""
}

func (pl *plan) volumes(s *service) []string {
	if s.build {
		return append(slices.Clone(s.volumes), pl.img.volumes...)
	}
	return s.volumes
}

func (pl *plan) volumeDir(s *service, path string) string {
	return filepath.Join(pl.root, s.name, strings.ReplaceAll(strings.Trim(path, "/"), "/", "_"))
}

// rewrite turns a token of s's command, environment or healthcheck from
// the compose network's terms into loopback's: a service's name or address
// is 127.0.0.1, NAME:PORT or ADDRESS:PORT of a service its loopback port,
// s's own wildcard or loopback addresses with one of its container ports
// (and ":PORT", and PORT alone) its loopback port, a path in a volume of
// s the directory that stands for it.
func (pl *plan) rewrite(s *service, tok string) string {
	if tok == "0.0.0.0" {
		return "127.0.0.1"
	}
	if lp, ok := pl.ports[s.name][tok]; ok {
		return lp
	}
	if lp, ok := pl.ports[s.name][strings.TrimPrefix(tok, ":")]; ok && tok[0] == ':' {
		return "127.0.0.1:" + lp
	}
	for _, v := range pl.volumes(s) {
		if tok == v || strings.HasPrefix(tok, v+"/") {
			return pl.volumeDir(s, v) + tok[len(v):]
		}
	}
	var pairs []string
	for _, o := range pl.services {
		if tok == o.name || tok == o.ip && o.ip != "" {
			return "127.0.0.1"
		}
		for cp, lp := range pl.ports[o.name] {
			pairs = append(pairs, o.name+":"+cp, "127.0.0.1:"+lp)
			if o.ip != "" {
				pairs = append(pairs, o.ip+":"+cp, "127.0.0.1:"+lp)
			}
		}
	}
	for cp, lp := range pl.ports[s.name] {
		for _, host := range []string{"127.0.0.1", "localhost", "0.0.0.0"} {
			pairs = append(pairs, host+":"+cp, "127.0.0.1:"+lp)
		}
	}
	return strings.NewReplacer(pairs...).Replace(tok)
}

func (pl *plan) rewriteAll(s *service, toks []string) []string {
	out := make([]string, len(toks))
	for i, tok := range toks {
		out[i] = pl.rewrite(s, tok)
	}
	return out
}

// proc is a running service.
type proc struct {
	s      *service
	cmd    *exec.Cmd
	log    *syncBuffer
	exited chan struct{}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if len(s) > 4000 {
		s = "..." + s[len(s)-4000:]
	}
	return s
}

// start runs s's process as its container would: a built service's
// ENTRYPOINT with its command (or the image's CMD) and the image's ENV,
// an image's command as is (the redis image's entrypoint execs it), in
// the directory of its first volume, with the compose environment.
func (pl *plan) start(s *service) (*proc, error) {
	argv := s.command
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CLICKGATE_") {
			env = append(env, kv)
		}
	}
	if s.build {
		if len(argv) == 0 {
			argv = pl.img.cmd
		}
		argv = append(slices.Clone(pl.img.entrypoint), argv...)
		for _, kv := range pl.img.env {
			env = append(env, kv[0]+"="+pl.rewrite(s, kv[1]))
		}
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("service %s has no command", s.name)
	}
	for k, v := range s.env {
		env = append(env, k+"="+pl.rewrite(s, v))
	}
	argv = pl.rewriteAll(s, argv)
	path := pl.bin
	if !s.build || argv[0] != pl.img.binName {
		var err error
		if path, err = exec.LookPath(argv[0]); err != nil {
			return nil, fmt.Errorf("service %s: %w", s.name, err)
		}
	}
	p := &proc{s: s, log: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(path, argv[1:]...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a shell's children too
	if vols := pl.volumes(s); len(vols) > 0 {
		p.cmd.Dir = pl.volumeDir(s, vols[0])
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot start service %s: %w", s.name, err)
	}
	go func() {
		p.cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

func (p *proc) signal(sig syscall.Signal) {
	select {
	case <-p.exited:
	default:
		syscall.Kill(-p.cmd.Process.Pid, sig)
	}
}

// runOnce runs a one-shot service to its exit, which must be 0.
func (pl *plan) runOnce(ctx context.Context, s *service) error {
	p, err := pl.start(s)
	if err != nil {
		return err
	}
	select {
	case <-p.exited:
	case <-ctx.Done():
		p.signal(syscall.SIGKILL)
		<-p.exited
		return fmt.Errorf("service %s did not exit: %w\n%s", s.name, ctx.Err(), p.log)
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		return fmt.Errorf("service %s exited %d:\n%s", s.name, code, p.log)
	}
	return nil
}

// up starts every service once the services it depends on meet their
// conditions, and waits until each long-running one is healthy and each
// one-shot one has exited 0, as `docker compose up --wait` does.
func (pl *plan) up(ctx context.Context, t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	started, healthy, completed := map[string]chan struct{}{}, map[string]chan struct{}{}, map[string]chan struct{}{}
	for _, s := range pl.services {
		started[s.name], healthy[s.name], completed[s.name] = make(chan struct{}), make(chan struct{}), make(chan struct{})
	}
	errs := make(chan error, len(pl.services))
	for _, s := range pl.services {
		go func() {
			err := pl.upOne(ctx, s, started, healthy, completed)
			if err != nil {
				cancel()
			}
			errs <- err
		}()
	}
	var all []error
	for range pl.services {
		if err := <-errs; err != nil && !errors.Is(err, context.Canceled) {
			all = append(all, err)
		}
	}
	if err := errors.Join(all...); err != nil {
		t.Fatalf("compose up failed: %s\n%s", err, pl.logs())
	}
	if ctx.Err() != nil {
		t.Fatalf("compose up: %s\n%s", ctx.Err(), pl.logs())
	}
}

func (pl *plan) upOne(ctx context.Context, s *service, started, healthy, completed map[string]chan struct{}) error {
	for d, cond := range s.dependsOn {
		ch := map[string]chan struct{}{"service_started": started[d], "service_healthy": healthy[d],
			"service_completed_successfully": completed[d]}[cond]
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("service %s: waiting for %s to be %s: %w", s.name, d, cond, ctx.Err())
		}
	}
	if pl.oneShot[s.name] {
		close(started[s.name])
		if err := pl.runOnce(ctx, s); err != nil {
			return err
		}
		close(completed[s.name])
		return nil
	}
	p, err := pl.start(s)
	if err != nil {
		return err
	}
	pl.mu.Lock()
	pl.running = append(pl.running, p)
	pl.mu.Unlock()
	close(started[s.name])
	if len(s.health) == 0 || s.health[0] == "NONE" {
		close(healthy[s.name])
		return nil
	}
	deadline := time.Now().Add(s.healthWait)
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("service %s exited %d before it was healthy", s.name, p.cmd.ProcessState.ExitCode())
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if pl.healthy(ctx, s) {
			close(healthy[s.name])
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("service %s not healthy within %s (%q)", s.name, s.healthWait, s.health)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// healthy runs s's healthcheck once. The edges' image runs busybox wget
// on a URL; the check GETs that URL itself, so it needs no wget.
func (pl *plan) healthy(ctx context.Context, s *service) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var argv []string
	switch s.health[0] {
	case "CMD":
		argv = pl.rewriteAll(s, s.health[1:])
	case "CMD-SHELL":
		argv = []string{"sh", "-c", pl.rewrite(s, strings.Join(s.health[1:], " "))}
	default:
		panic(fmt.Sprintf("BUG: healthcheck %q of %s", s.health, s.name))
	}
	if argv[0] == "wget" {
		i := slices.IndexFunc(argv, func(a string) bool { return strings.HasPrefix(a, "http://") })
		if i < 0 {
			panic(fmt.Sprintf("BUG: no URL in healthcheck %q of %s", s.health, s.name))
		}
		req, _ := http.NewRequestWithContext(ctx, "GET", argv[i], nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	return exec.CommandContext(ctx, argv[0], argv[1:]...).Run() == nil
}

// down stops the long-running services in the reverse order of their
// start, as `docker compose down` does: SIGTERM, then SIGKILL after the
// stop grace period. Each must exit 0 within it.
func (pl *plan) down(t *testing.T) {
	t.Helper()
	pl.mu.Lock()
	running := slices.Clone(pl.running)
	pl.mu.Unlock()
	for _, p := range slices.Backward(running) {
		p.signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(p.s.stopGrace):
			p.signal(syscall.SIGKILL)
			<-p.exited
			t.Fatalf("service %s did not exit within its stop grace period (%s) of SIGTERM:\n%s", p.s.name, p.s.stopGrace, p.log)
		}
		if code := p.cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("unexpected exit code of service %s after SIGTERM; got %d; want 0\n%s", p.s.name, code, p.log)
		}
	}
}

func (pl *plan) killAll() {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for _, p := range pl.running {
		p.signal(syscall.SIGKILL)
		<-p.exited
	}
}

func (pl *plan) logs() string {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	var b strings.Builder
	for _, p := range pl.running {
		fmt.Fprintf(&b, "--- %s: %s\n%s\n", p.s.name, strings.Join(p.cmd.Args, " "), p.log)
	}
	return b.String()
}
