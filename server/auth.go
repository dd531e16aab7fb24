package server

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	sessionCookie = "conq_session"
	csrfCookie    = "conq_csrf"
	csrfField     = "csrf_token"
	csrfHeader    = "X-CSRF-Token"
	sessionTTL    = 12 * time.Hour
	maxFormBytes  = 64 << 10
)

// contentSecurityPolicy allows only the server's own script and style: no
// inline script or style, no framing, forms post to the server only.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// securityHeaders sets the headers every response carries.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// hostCheck rejects requests whose Host is not a loopback name when the
// server runs without authentication: a DNS-rebinding page in a browser
// on this machine must not reach an unauthenticated server.
func hostCheck(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if !isLoopbackHost(host) {
			writeError(w, http.StatusForbidden, "forbidden_host",
				"Host "+strconv.Quote(r.Host)+" is not a loopback name; an unauthenticated server only answers to localhost, 127.0.0.1 or [::1]")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// crossOrigin rejects unsafe cross-origin browser requests (by
// Sec-Fetch-Site / Origin). Non-browser clients send neither header and
// pass.
func crossOrigin(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusForbidden, "cross_origin", "cross-origin request refused")
	}))
	return cop.Handler(next)
}

// authKind is how a request authenticated.
type authKind int

const (
	authNone    authKind = iota // no authentication configured
	authBearer                  // Authorization: Bearer token
	authBasic                   // HTTP basic auth (ambient credentials)
	authSession                 // dashboard session cookie (ambient)
)

func (s *Server) authRequired() bool { return s.cfg.AuthToken != "" || s.cfg.BasicAuthUser != "" }

// authenticate reports how r authenticated, and false if it did not.
func (s *Server) authenticate(r *http.Request) (authKind, bool) {
	if !s.authRequired() {
		return authNone, true
	}
	if s.cfg.AuthToken != "" {
		if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && equal(strings.TrimSpace(v), s.cfg.AuthToken) {
			return authBearer, true
		}
		if c, err := r.Cookie(sessionCookie); err == nil && s.validSession(c.Value) {
			return authSession, true
		}
	}
	if s.cfg.BasicAuthUser != "" {
		if u, p, ok := r.BasicAuth(); ok && equal(u, s.cfg.BasicAuthUser) && equal(p, s.cfg.BasicAuthPassword) {
			return authBasic, true
		}
	}
	return authNone, false
}

// requireAPIAuth guards the API and /metrics: 401 with a JSON error, and a
// CSRF header for state changes made with the dashboard's session cookie.
func (s *Server) requireAPIAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kind, ok := s.authenticate(r)
		if !ok {
			if s.cfg.BasicAuthUser != "" {
				w.Header().Set("WWW-Authenticate", `Basic realm="conq", charset="UTF-8"`)
			} else {
				w.Header().Set("WWW-Authenticate", `Bearer realm="conq"`)
			}
			writeError(w, http.StatusUnauthorized, "unauthorized", "missing or wrong credentials: send Authorization: Bearer <token>")
			return
		}
		if kind == authSession && !safeMethod(r.Method) && !s.validCSRF(r, r.Header.Get(csrfHeader)) {
			writeError(w, http.StatusForbidden, "csrf", "missing or wrong "+csrfHeader+" header")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// requireDashboardAuth guards dashboard pages: basic auth prompts, token
// auth redirects to the login page; state changes need the CSRF token.
func (s *Server) requireDashboardAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := s.authenticate(r); !ok {
			if s.cfg.AuthToken != "" && r.Method == http.MethodGet {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			if s.cfg.BasicAuthUser != "" {
				w.Header().Set("WWW-Authenticate", `Basic realm="conq", charset="UTF-8"`)
			}
			http.Error(w, "401 unauthorized: log in first", http.StatusUnauthorized)
			return
		}
		if !safeMethod(r.Method) {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		}
		if !safeMethod(r.Method) && !s.validCSRF(r, r.PostFormValue(csrfField)) {
			http.Error(w, "403 forbidden: missing or wrong CSRF token; reload the page and try again", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// csrfToken returns the request's CSRF token (double-submit cookie),
// setting a new cookie when there is none.
func (s *Server) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) == 64 {
		return c.Value
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	tok := hex.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: tok, Path: "/", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	return tok
}

func (s *Server) validCSRF(r *http.Request, got string) bool {
	c, err := r.Cookie(csrfCookie)
	return err == nil && len(c.Value) == 64 && equal(got, c.Value)
}

// newSession returns a session cookie value: nonce.expiry.mac.
func (s *Server) newSession(now time.Time) string {
	nonce := rand.Text()
	payload := nonce + "." + strconv.FormatInt(now.Add(sessionTTL).Unix(), 10)
	return payload + "." + s.mac(payload)
}

func (s *Server) validSession(v string) bool {
	nonce, _, ok := s.session(v)
	return ok && !s.revoked.has(nonce)
}

// session checks a session cookie's signature and expiry, and returns its
// nonce and expiry.
func (s *Server) session(v string) (nonce string, expiry int64, ok bool) {
	i := strings.LastIndexByte(v, '.')
	if i < 0 {
		return "", 0, false
	}
	payload, mac := v[:i], v[i+1:]
	if !equal(mac, s.mac(payload)) {
		return "", 0, false
	}
	nonce, exp, ok := strings.Cut(payload, ".")
	if !ok {
		return "", 0, false
	}
	unix, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || s.clock.Now().Unix() >= unix {
		return "", 0, false
	}
	return nonce, unix, true
}

// endSession ends the session of cookie value v server-side (logout), so
// a copy of the cookie no longer works either.
func (s *Server) endSession(v string) {
	if nonce, exp, ok := s.session(v); ok {
		s.revoked.add(nonce, exp, s.clock.Now().Unix())
	}
}

// revokedSessions are the sessions ended by logout before their expiry.
// Session cookies are signed, not stored, so ending one means remembering
// it until it would have expired. Only a valid session can be added, so
// the set is bounded by logins; expired entries are dropped as others are
// added. The zero value is ready to use.
type revokedSessions struct {
	mu sync.Mutex
	m  map[string]int64 // nonce -> expiry (Unix seconds)
}

func (r *revokedSessions) add(nonce string, expiry, now int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = make(map[string]int64)
	}
	for n, exp := range r.m {
		if exp <= now {
			delete(r.m, n)
		}
	}
	r.m[nonce] = expiry
}

func (r *revokedSessions) has(nonce string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.m[nonce]
	return ok
}

func (s *Server) mac(payload string) string {
	h := hmac.New(sha256.New, s.secret)
	h.Write([]byte("conq-session:" + payload))
	return hex.EncodeToString(h.Sum(nil))
}

// equal compares secrets in constant time (for equal lengths).
func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// maxRedirectPath bounds a redirect target taken from a request.
const maxRedirectPath = 4096

// localPath returns p if it is a path on this server, else fallback: it
// keeps redirects after forms and login on the server. Only an absolute
// path is local: "/" and not a second "/" or "\" ("//host" and "/\host"
// are scheme-relative URLs to browsers). Control characters are refused
// anywhere, since browsers drop TAB, CR and LF ("/\t/host" reads as
// "//host"), and so are backslashes, which browsers read as "/" and which
// http.Redirect's path cleaning could move next to the first slash.
func localPath(p, fallback string) string {
	if p == "" || p[0] != '/' || len(p) > maxRedirectPath {
		return fallback
	}
	if len(p) > 1 && p[1] == '/' {
		return fallback
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return fallback
		}
	}
	return p
}
