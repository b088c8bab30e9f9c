package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/valyala/fasthttp"
)

// Admin calls the admin API in process, with the admin token: the
// dashboard's forms become the same calls a client of the API makes, so
// they are checked by the same code (the admin API's validation and the
// domain types' rules) and answer with the same errors.
type Admin struct {
	handle fasthttp.RequestHandler
	auth   string
}

// NewAdmin returns an Admin that serves its calls with handle, the admin
// API's handler, authorized by token.
func NewAdmin(handle fasthttp.RequestHandler, token string) *Admin {
	return &Admin{handle: handle, auth: "Bearer " + token}
}

// Do makes one call and returns the answer's status and body. body is
// sent as JSON when not nil.
func (a *Admin) Do(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var rc fasthttp.RequestCtx
	rc.Request.Header.SetMethod(method)
	rc.Request.SetRequestURI(path)
	rc.Request.Header.Set("Authorization", a.auth)
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			panic(fmt.Sprintf("BUG: cannot marshal admin request: %s", err))
		}
		rc.Request.Header.SetContentType("application/json")
		rc.Request.SetBody(b)
	}
	// The API bounds its store calls itself; a call that ctx no longer
	// wants is not started.
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	a.handle(&rc)
	return rc.Response.StatusCode(), append([]byte(nil), rc.Response.Body()...), nil
}

// apiError is a refusal of the admin API: its status and its message,
// which is written for the caller and shown on the page.
type apiError struct {
	Status  int
	Message string
}

func (e *apiError) Error() string { return e.Message }

// call makes one call and decodes a 2xx answer into out (when not nil).
// Any other answer is an *apiError with the API's message.
func (a *Admin) call(ctx context.Context, method, path string, body, out any) error {
	status, resp, err := a.Do(ctx, method, path, body)
	if err != nil {
		return err
	}
	if status < 200 || status > 299 {
		return a.errorOf(status, resp)
	}
	if out != nil {
		if err := json.Unmarshal(resp, out); err != nil {
			return fmt.Errorf("cannot decode the answer to %s %s: %w", method, path, err)
		}
	}
	return nil
}

// errorOf returns the *apiError of an answer that is not 2xx.
func (a *Admin) errorOf(status int, resp []byte) error {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(resp, &e) != nil || e.Error == "" {
		e.Error = http.StatusText(status)
	}
	return &apiError{Status: status, Message: e.Error}
}
