package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"regexp"
	"testing"
	"time"
)

func TestBaselineCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"baseline", "--listen", "127.0.0.1:0", "--links", "10"}, pw) }()
	addr := ""
	sc := bufio.NewScanner(pr)
	re := regexp.MustCompile(`listen=(\S+)`)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			addr = m[1]
			break
		}
	}
	go io.Copy(io.Discard, pr)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/" + LinkCode(9))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 302 || resp.Header.Get("Location") != "https://app.example.com/join?l=9" {
		t.Fatalf("unexpected answer; got %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, err := c.Get("http://" + addr + "/" + LinkCode(10)); err != nil || resp.StatusCode != 404 {
		t.Fatalf("unexpected answer for an unknown code: %v %v", resp, err)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("unexpected exit code %d", code)
	}
	if code := run(context.Background(), []string{"baseline", "--links", "0"}, io.Discard); code != 1 {
		t.Fatalf("unexpected exit code for --links 0: %d", code)
	}
	if code := run(context.Background(), nil, io.Discard); code != 2 {
		t.Fatalf("unexpected exit code without a command: %d", code)
	}
}
