package admin

import (
	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/redirect"
)

// ServerError answers, in JSON like every admin error, a request the admin
// listener could not read: a body over its MaxRequestBodySize is 413.
func ServerError(rc *fasthttp.RequestCtx, err error) {
	status, msg := redirect.ReadError(err)
	writeJSON(rc, status, map[string]string{"error": msg})
}
