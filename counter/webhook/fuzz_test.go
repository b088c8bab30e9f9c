package webhook

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzVerify: a receiver's check of any header over any body never panics,
// and accepts only what Sign wrote with the secret.
func FuzzVerify(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	f.Add(Sign([]byte("secret"), []byte("{}"), now), []byte("{}"))
	f.Add("t=1800000000,v1=00,v1=zz", []byte(""))
	f.Add("t=,v1=", []byte("x"))
	f.Add("t=99999999999999999999,v1=ab", []byte("x"))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		err := Verify([]byte("secret"), header, body, now, Tolerance)
		if err == nil && Verify([]byte("other secret"), header, body, now, Tolerance) == nil {
			t.Fatalf("header %q verifies with two secrets", header)
		}
	})
}

// FuzzSpec: any JSON an operator posts either is refused, or gives an
// endpoint whose URL is an absolute http(s) URL with a host and whose
// events are known.
func FuzzSpec(f *testing.F) {
	for _, s := range []string{`{"url":"https://example.com/h"}`, `{"url":"http://[::1]:80/","events":["campaign.payable"]}`,
		`{"url":"https://a@b/"}`, `{"url":"https://example.com/","secret":"0123456789abcdef0123456789abcdef"}`, `{"url":"https://%zz/"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Spec
		if json.Unmarshal(b, &s) != nil {
			return
		}
		ep, err := s.Endpoint(time.Now())
		if err != nil {
			return
		}
		u, err := url.Parse(ep.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil || strings.ContainsAny(ep.URL, " #\r\n") {
			t.Fatalf("accepted url %q", ep.URL)
		}
		if len(ep.Events) == 0 || len(ep.Secret) < 32 {
			t.Fatalf("accepted endpoint %+v", ep)
		}
		for _, e := range ep.Events {
			if !KnownType(e) {
				t.Fatalf("accepted event type %q", e)
			}
		}
	})
}
