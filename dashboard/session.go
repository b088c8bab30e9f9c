package dashboard

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/http"
	"strings"
	"time"
)

// Operators log in with the admin token and get a session cookie. A
// session is stateless: the cookie holds a random id and an expiry,
// authenticated with a key derived from the admin token, so sessions
// survive a restart, are good on every node that has the same token, and
// all end when the token is changed. Each session has its CSRF token, an
// HMAC of its id, that every form carries and every POST must match.

const (
	sessionCookie = "cg_session"
	// loginCookie holds a random value before login, from which the login
	// form's CSRF token is made (the login form is a form too).
	loginCookie = "cg_login"
	csrfField   = "csrf"
	idLen       = 16
)

// Strict: a value with other trailing bits than its encoding is refused,
// so that each session, token and CSRF value has one spelling.
var b64 = base64.RawURLEncoding.Strict()

type sessions struct {
	key []byte
	ttl time.Duration
	now func() time.Time
	// tokenSum is the admin token's SHA-256: comparing digests is
	// constant-time whatever the lengths.
	tokenSum [sha256.Size]byte
}

func newSessions(token string, ttl time.Duration, now func() time.Time) *sessions {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("clickgate dashboard session v1"))
	return &sessions{key: m.Sum(nil), ttl: ttl, now: now, tokenSum: sha256.Sum256([]byte(token))}
}

// mac returns the HMAC of parts under the session key, each part
// length-prefixed so that ("ab","c") and ("a","bc") differ.
func (s *sessions) mac(parts ...string) []byte {
	m := hmac.New(sha256.New, s.key)
	var n [4]byte
	for _, p := range parts {
		binary.BigEndian.PutUint32(n[:], uint32(len(p)))
		m.Write(n[:])
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

// tokenIs reports whether token is the admin token.
func (s *sessions) tokenIs(token string) bool {
	sum := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) == 1
}

// newSession returns a new session's cookie value.
func (s *sessions) newSession() string {
	var p [idLen + 8]byte
	rand.Read(p[:idLen])
	binary.BigEndian.PutUint64(p[idLen:], uint64(s.now().Add(s.ttl).Unix()))
	payload := b64.EncodeToString(p[:])
	return payload + "." + b64.EncodeToString(s.mac("session", payload))
}

// Errors of a session cookie.
var (
	errMalformed = errors.New("malformed session")
	errExpired   = errors.New("session expired")
)

// parseSession checks a session cookie's value and returns its id.
func (s *sessions) parseSession(v string) (string, error) {
	payload, sig, ok := strings.Cut(v, ".")
	if !ok || len(payload) != b64.EncodedLen(idLen+8) || len(sig) != b64.EncodedLen(sha256.Size) {
		return "", errMalformed
	}
	got, err := b64.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac("session", payload)) {
		return "", errMalformed
	}
	p, err := b64.DecodeString(payload)
	if err != nil {
		return "", errMalformed
	}
	if s.now().Unix() >= int64(binary.BigEndian.Uint64(p[idLen:])) {
		return "", errExpired
	}
	return payload[:b64.EncodedLen(idLen)], nil
}

// csrf returns the CSRF token of a scope: a session id, or another value
// a form is bound to.
func (s *sessions) csrf(kind, scope string) string {
	return b64.EncodeToString(s.mac("csrf", kind, scope))
}

// csrfOK reports whether the form's token is the scope's.
func (s *sessions) csrfOK(r *http.Request, kind, scope string) bool {
	got, err := b64.DecodeString(r.PostFormValue(csrfField))
	return err == nil && hmac.Equal(got, s.mac("csrf", kind, scope))
}

func setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	// Secure: browsers keep it on https, and on http from the loopback
	// (127.0.0.1, localhost), which they hold for a secure context.
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
}

// session returns the request's session id, or "".
func (s *Server) session(r *http.Request) string {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return ""
	}
	id, err := s.sessions.parseSession(c.Value)
	if err != nil {
		return ""
	}
	return id
}

// opPage is what every operator page gets: its CSRF token.
type opPage struct {
	CSRF string
	Done string
}

// operator wraps an operator page: without a session, GET goes to the
// login form and POST is refused; a POST without its session's CSRF token
// is refused.
func (s *Server) operator(h func(w http.ResponseWriter, r *http.Request, p opPage)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := s.session(r)
		if id == "" {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/login", http.StatusSeeOther)
				return
			}
			s.fail(w, r, http.StatusForbidden, "Not logged in, or the session expired: log in again.")
			return
		}
		p := opPage{CSRF: s.sessions.csrf("session", id), Done: doneMessage(r)}
		if r.Method == http.MethodPost && !s.sessions.csrfOK(r, "session", id) {
			s.fail(w, r, http.StatusForbidden, "The form's CSRF token is missing or wrong: reload the page and send it again.")
			return
		}
		h(w, r, p)
	}
}

type loginData struct {
	CSRF, Error string
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	if s.session(r) != "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	s.renderLogin(w, r, http.StatusOK, "")
}

// renderLogin shows the login form with a fresh login cookie.
func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	var v [idLen]byte
	rand.Read(v[:])
	pre := b64.EncodeToString(v[:])
	setCookie(w, loginCookie, pre, 3600)
	s.render(w, status, "login", loginData{CSRF: s.sessions.csrf("login", pre), Error: msg})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(loginCookie)
	if err != nil || !s.sessions.csrfOK(r, "login", c.Value) {
		s.fail(w, r, http.StatusForbidden, "The login form's CSRF token is missing or wrong: open the login page again.")
		return
	}
	if !s.sessions.tokenIs(strings.TrimSpace(r.PostFormValue("token"))) {
		s.renderLogin(w, r, http.StatusUnauthorized, "Wrong admin token.")
		return
	}
	setCookie(w, loginCookie, "", -1)
	setCookie(w, sessionCookie, s.sessions.newSession(), int(s.o.SessionTTL/time.Second))
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, _ opPage) {
	setCookie(w, sessionCookie, "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
