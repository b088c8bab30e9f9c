// Package adminclient is a typed client of clickgate's admin API, used by
// the clickgate CLI and by clickbench. Requests that change an object are
// partial: a nil field is left out of the request, and the server keeps
// the object's value of it.
package adminclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Client calls the admin API of one clickgate node.
type Client struct {
	URL   string // of the admin listener, e.g. http://127.0.0.1:8081
	Token string // bearer token of the admin API
	// HTTP sends the requests. default: http.DefaultClient
	HTTP *http.Client
	// Timeout bounds one call. default: 30s
	Timeout time.Duration
	// BulkTimeout bounds one bulk import of links. default: 5m
	BulkTimeout time.Duration
}

// Errors that an *Error matches (errors.Is) by its status.
var (
	ErrNotFound = errors.New("adminclient: not found") // 404
	ErrConflict = errors.New("adminclient: conflict")  // 409
)

// Error is an answer of the admin API that is not 2xx. Its message is the
// API's, which names what is refused or missing.
type Error struct {
	Status  int    // HTTP status
	Message string // the API's error message; "" when it gave none
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%d %s", e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Is matches ErrNotFound and ErrConflict by status.
func (e *Error) Is(target error) bool {
	return target == ErrNotFound && e.Status == http.StatusNotFound ||
		target == ErrConflict && e.Status == http.StatusConflict
}

// maxAnswer bounds the answers read, a whole catalog included.
const maxAnswer = 256 << 20

// send makes one call with body as is, and returns the answer's status and
// body whatever the status.
func (c *Client) send(ctx context.Context, method, path, contentType string, body []byte, timeout time.Duration) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.URL, "/")+path, rd)
	if err != nil {
		return 0, nil, fmt.Errorf("bad admin URL %q: %w", c.URL, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("cannot reach the admin API: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return 0, nil, fmt.Errorf("cannot read the admin API's answer to %s %s: %w", method, path, err)
	}
	return resp.StatusCode, b, nil
}

func (c *Client) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return 30 * time.Second
}

// call sends in (as JSON, unless nil) and decodes a 2xx answer into out
// (unless nil). Any other answer is an *Error.
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("cannot encode %s %s: %w", method, path, err)
		}
	}
	status, b, err := c.send(ctx, method, path, "application/json", body, c.timeout())
	if err != nil {
		return err
	}
	if status < 200 || status > 299 {
		return errorOf(status, b)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("unexpected answer of the admin API to %s %s: %w", method, path, err)
	}
	return nil
}

// errorOf is the *Error of an answer that is not 2xx.
func errorOf(status int, body []byte) *Error {
	var e struct{ Error string }
	json.Unmarshal(body, &e)
	return &Error{Status: status, Message: e.Error}
}
