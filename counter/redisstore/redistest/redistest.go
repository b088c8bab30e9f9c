// Package redistest starts a real redis-server for tests: on a free loopback
// port, with a temporary data directory, killed when the test ends; or a
// Redis Cluster of them, with replicas if asked (StartCluster).
//
// There are no mocks of Redis in clickgate's tests; every test that needs
// Redis starts one with Start. redis-server must be on PATH, and redis-cli
// for a cluster (Debian's redis-server package brings both).
package redistest

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// readyTimeout bounds how long a server may take to answer PING.
	readyTimeout = 10 * time.Second
	// bindAttempts is how often Start tries another port when redis cannot
	// bind the one it was given (another process took it in between).
	bindAttempts = 5
)

// Server is one redis-server process. Its methods are safe for concurrent
// use.
type Server struct {
	bin    string
	dir    string
	log    string
	port   int
	opt    Options
	tls    *tls.Config // of the harness's own client; nil without TLS
	tlsDir string      // holds ca.pem, server.pem and server-key.pem; dir if empty
	// cluster is set on a node of a Cluster.
	cluster *clusterNode

	mu     sync.Mutex
	proc   *process // nil when stopped
	paused bool     // by Pause, until Resume, Stop or a start
}

// clusterNode is what a cluster node adds to a server's command line.
type clusterNode struct {
	busPort     int
	nodeTimeout time.Duration
}

type process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd.Wait returned
}

// Start starts redis-server on a free loopback port with a t.TempDir() as its
// data directory, append-only persistence (appendfsync everysec) and no RDB
// snapshots, and waits until it answers PING. A test that kills the server
// and counts on what it acknowledged must add "--appendfsync", "always"
// (Options.Args): under everysec, Redis postpones its write of the
// append-only file for up to 2 s while a background fsync runs, and
// answers meanwhile. The server is killed when the test ends. Start fails
// the test if redis-server is not on PATH.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, Options{})
}

// Options configure StartWith. The zero value starts what Start does.
type Options struct {
	// Password is the default user's (requirepass). URL carries it.
	// default: none, no authentication
	Password string
	// TLS serves TLS only, with a certificate for 127.0.0.1 signed by a CA
	// made for the server; CAFile names the CA's certificate, and URL is
	// rediss://. default: plain TCP
	TLS bool
	// Args are more redis-server arguments, for example an ACL user:
	// "--user", "edge", "on", ">secret", "~cg:*", "+get". default: none
	Args []string
	// Wrap is a command redis-server runs under, which must exec it in
	// place (so that its process is the server's), for example "taskset",
	// "-c", "0" to pin it to a CPU. default: none
	Wrap []string
}

// StartWith is Start with options.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	s, err := newServer(t.TempDir(), o)
	if err != nil {
		t.Fatalf("%s", err)
	}
	t.Cleanup(s.Stop)
	if o.TLS {
		if s.tls, err = writeTLSFiles(s.dir); err != nil {
			t.Fatalf("cannot make the TLS certificates: %s", err)
		}
	}
	if err := s.startOnFreePort(); err != nil {
		t.Fatalf("%s", err)
	}
	return s
}

// newServer returns a server in dir, not started yet.
func newServer(dir string, o Options) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found on PATH (install it, e.g. apt-get install redis-server): %w", err)
	}
	return &Server{bin: bin, dir: dir, log: filepath.Join(dir, "redis.log"), opt: o}, nil
}

// startOnFreePort starts the server on a free loopback port (and a free bus
// port for a cluster node), trying other ports when another process takes
// one first.
func (s *Server) startOnFreePort() error {
	var lastErr error
	for range bindAttempts {
		var err error
		if s.cluster == nil {
			s.port, err = freePort()
		} else {
			s.port, s.cluster.busPort, err = freePorts()
		}
		if err != nil {
			return fmt.Errorf("cannot find a free loopback port: %w", err)
		}
		lastErr = s.start()
		if lastErr == nil {
			return nil
		}
		if !errors.Is(lastErr, errBind) {
			break
		}
	}
	return fmt.Errorf("cannot start redis-server: %w\nredis log:\n%s", lastErr, s.logTail())
}

// Addr returns the server's address, "127.0.0.1:port".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL returns the URL of database db, "redis://127.0.0.1:port/db", as the
// default user: "rediss://" with TLS, with ":password@" with a Password.
func (s *Server) URL(db int) string {
	if s.opt.Password == "" {
		return s.UserURL("", "", db)
	}
	return s.UserURL("default", s.opt.Password, db)
}

// UserURL returns the URL of database db as user with password.
func (s *Server) UserURL(user, password string, db int) string {
	u := url.URL{Scheme: "redis", Host: s.Addr(), Path: "/" + strconv.Itoa(db)}
	if s.opt.TLS {
		u.Scheme = "rediss"
	}
	if password != "" {
		u.User = url.UserPassword(user, password)
	}
	return u.String()
}

// CAFile returns the file of the CA certificate that signed the server's,
// with TLS.
func (s *Server) CAFile() string { return filepath.Join(s.certDir(), "ca.pem") }

func (s *Server) certDir() string {
	if s.tlsDir != "" {
		return s.tlsDir
	}
	return s.dir
}

// Dir returns the server's data directory.
func (s *Server) Dir() string { return s.dir }

// Stop kills the server and waits for it to exit, as a crash would: what
// redis had written to its append-only file survives (it writes it before
// answering), what it had not is lost. Stop on a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	// The whole process group: an AOF rewrite child left running would
	// keep writing into the directory the test is about to remove.
	syscall.Kill(-s.proc.cmd.Process.Pid, syscall.SIGKILL)
	<-s.proc.exited
	s.proc = nil
	s.paused = false
}

// Pause stops the server with SIGSTOP: it keeps its connections and its
// port but answers nothing, as a server stalled by the kernel, a long fork
// or a network partition would, until Resume. Commands sent meanwhile wait
// in its socket buffers and run after Resume, even if their client has
// given up.
func (s *Server) Pause(t testing.TB) { s.signal(t, syscall.SIGSTOP) }

// Resume continues a paused server with SIGCONT.
func (s *Server) Resume(t testing.TB) { s.signal(t, syscall.SIGCONT) }

func (s *Server) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		t.Fatalf("cannot send %s to redis-server: it is not running", sig)
	}
	if err := s.proc.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("cannot send %s to redis-server: %s", sig, err)
	}
	s.paused = sig == syscall.SIGSTOP
}

// running reports whether the server runs and is not paused.
func (s *Server) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil && !s.paused
}

// PID returns the process id of redis-server, 0 when stopped: a load tool
// reads its CPU time from /proc.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.cmd.Process.Pid
}

// Restart starts the server again on the same port and data directory, after
// stopping it if it runs, and waits until it answers PING.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	var err error
	// The port is ours only by convention once the server is down; another
	// process may hold it for a moment, so retry a few times.
	for attempt := range bindAttempts {
		if err = s.start(); !errors.Is(err, errBind) {
			break
		}
		time.Sleep(time.Duration(attempt+1) * 100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("cannot restart redis-server on %s: %s\nredis log:\n%s", s.Addr(), err, s.logTail())
	}
}

var errBind = errors.New("cannot bind the port")

// start starts redis-server on s.port and waits for PING.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		panic("BUG: redistest: start while the server runs")
	}
	args := []string{
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--logfile", s.log,
		"--save", "",
		"--appendonly", "yes",
		"--appendfsync", "everysec",
		"--daemonize", "no",
		// The conformance suite gives each of its tests a database.
		"--databases", "64",
	}
	if !s.opt.TLS {
		args = append(args, "--port", strconv.Itoa(s.port))
	} else {
		args = append(args, "--port", "0", "--tls-port", strconv.Itoa(s.port),
			"--tls-cert-file", filepath.Join(s.certDir(), "server.pem"), "--tls-key-file", filepath.Join(s.certDir(), "server-key.pem"),
			"--tls-ca-cert-file", s.CAFile(), "--tls-auth-clients", "no")
	}
	if s.opt.Password != "" {
		args = append(args, "--requirepass", s.opt.Password)
	}
	if c := s.cluster; c != nil {
		args = append(args,
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(s.dir, "nodes.conf"),
			"--cluster-port", strconv.Itoa(c.busPort),
			"--cluster-node-timeout", strconv.FormatInt(c.nodeTimeout.Milliseconds(), 10),
			// A master waits 5 s by default for more replicas before it
			// streams a full sync; a replica is not ready before that.
			"--repl-diskless-sync-delay", "0")
		if s.opt.Password != "" {
			args = append(args, "--masterauth", s.opt.Password)
		}
		if s.opt.TLS {
			args = append(args, "--tls-cluster", "yes", "--tls-replication", "yes")
		}
	}
	args = append(args, s.opt.Args...)
	cmd := exec.Command(s.bin, args...)
	if len(s.opt.Wrap) > 0 {
		cmd = exec.Command(s.opt.Wrap[0], append(append(s.opt.Wrap[1:len(s.opt.Wrap):len(s.opt.Wrap)], s.bin), args...)...)
	}
	cmd.Dir = s.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // see Stop
	logStart := s.logSize()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("cannot run %s: %w", s.bin, err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(p.exited)
	}()

	deadline := time.Now().Add(readyTimeout)
	for {
		err := s.ping(cmd.Process.Pid)
		if err == nil {
			s.proc = p
			s.paused = false
			return nil
		}
		select {
		case <-p.exited:
			if s.logHas(logStart, "Address already in use") {
				return fmt.Errorf("%w %d: %s", errBind, s.port, cmd.ProcessState)
			}
			return fmt.Errorf("redis-server exited before answering PING: %s", cmd.ProcessState)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-p.exited
			return fmt.Errorf("redis-server did not answer PING on %s within %s: %w", s.Addr(), readyTimeout, err)
		}
	}
}

// ping sends PING and INFO over a fresh connection and expects PONG from
// the process pid: another server that took the port must not pass for ours.
func (s *Server) ping(pid int) error {
	addr := s.Addr()
	d := &net.Dialer{Timeout: time.Second}
	var c net.Conn
	var err error
	if s.tls != nil {
		c, err = tls.DialWithDialer(d, "tcp", addr, s.tls)
	} else {
		c, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	cmds := "PING\r\nINFO server\r\n"
	if s.opt.Password != "" {
		cmds = "AUTH " + s.opt.Password + "\r\n" + cmds
	}
	if _, err := c.Write([]byte(cmds)); err != nil {
		return err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if s.opt.Password != "" {
		if line != "+OK\r\n" {
			return fmt.Errorf("unexpected answer to AUTH: %q", strings.TrimSpace(line))
		}
		if line, err = r.ReadString('\n'); err != nil {
			return err
		}
	}
	if line != "+PONG\r\n" {
		// -LOADING while the append-only file is replayed.
		return fmt.Errorf("unexpected answer to PING: %q", strings.TrimSpace(line))
	}
	line, err = r.ReadString('\n')
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "$")))
	if !strings.HasPrefix(line, "$") || err != nil {
		return fmt.Errorf("unexpected answer to INFO: %q", strings.TrimSpace(line))
	}
	info := make([]byte, n+2)
	if _, err := io.ReadFull(r, info); err != nil {
		return err
	}
	want := "process_id:" + strconv.Itoa(pid) + "\r\n"
	if !strings.Contains(string(info), want) {
		return fmt.Errorf("another process answers on %s", addr)
	}
	return nil
}

// freePorts returns two different loopback ports that were free a moment
// ago.
func freePorts() (int, int, error) {
	var ports [2]int
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, 0, err
		}
		defer ln.Close()
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports[0], ports[1], nil
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) logSize() int64 {
	fi, err := os.Stat(s.log)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logHas reports whether the log has text past offset from.
func (s *Server) logHas(from int64, text string) bool {
	b, _ := os.ReadFile(s.log)
	if from > int64(len(b)) {
		from = 0
	}
	return strings.Contains(string(b[from:]), text)
}

// logTail returns the end of redis's log, for failure messages.
func (s *Server) logTail() string { return s.tail(4 << 10) }

// tail returns the last max bytes of redis's log.
func (s *Server) tail(max int) string {
	b, err := os.ReadFile(s.log)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %s)", s.log, err)
	}
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}
