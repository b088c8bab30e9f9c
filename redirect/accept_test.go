package redirect

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"syscall"
	"testing"
)

// flakyListener fails Accept with errs in order, then accepts from ln.
type flakyListener struct {
	net.Listener
	errs []error
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if len(l.errs) > 0 {
		err := l.errs[0]
		l.errs = l.errs[1:]
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", err)}
	}
	return l.Listener.Accept()
}

func TestKeepAccepting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	before := acceptOutOfFDs.Get()
	kl := KeepAccepting(&flakyListener{Listener: ln, errs: []error{syscall.EMFILE, syscall.ENFILE, syscall.ECONNABORTED, syscall.EMFILE}},
		slog.New(slog.DiscardHandler))
	go func() {
		if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			defer c.Close()
			c.Write([]byte("x"))
		}
	}()
	c, err := kl.Accept()
	if err != nil {
		t.Fatalf("unexpected Accept error after descriptors came back; got %v; want a connection", err)
	}
	c.Close()
	if got := acceptOutOfFDs.Get() - before; got != 4 {
		t.Fatalf("unexpected clickgate_accept_errors_total increase; got %d; want 4", got)
	}
	// Anything else is returned: a closed listener stops serving.
	ln.Close()
	if _, err := kl.Accept(); err == nil || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("unexpected Accept on a closed listener; got %v; want net.ErrClosed", err)
	}
}
