package flatpak

import (
	"net/http"
	"strings"
)

// BaseURL is the absolute URL, without a trailing slash, at which the
// client that sent r reaches Berth, for the files and commands that must
// name it in full (.flatpakrepo, .flatpakref, the catalogue's install
// commands). It is publicURL when set. Otherwise it is the request's scheme
// and host: when trustForwarded (Berth is behind a proxy that sets these
// headers and strips them from clients), the first X-Forwarded-Proto (http
// or https) and X-Forwarded-Host values, else the connection's TLS state
// and Host. A host that is not a plain host[:port] is ignored; with no
// usable host the result is "" (URLs built from it are relative to the
// server's root). Package web uses it too, so both name Berth alike.
func BaseURL(r *http.Request, publicURL string, trustForwarded bool) string {
	if publicURL != "" {
		return strings.TrimRight(publicURL, "/")
	}
	scheme, host := "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if trustForwarded {
		if p := strings.ToLower(firstValue(r.Header.Get("X-Forwarded-Proto"))); p == "http" || p == "https" {
			scheme = p
		}
		if h := firstValue(r.Header.Get("X-Forwarded-Host")); validHost(h) {
			host = h
		}
	}
	if !validHost(host) {
		return ""
	}
	return scheme + "://" + host
}

// firstValue is the first element of a comma-separated header value (the
// one the proxy nearest the client set), trimmed.
func firstValue(v string) string {
	first, _, _ := strings.Cut(v, ",")
	return strings.TrimSpace(first)
}

// validHost reports whether h is a plain host[:port]: a name, an IPv4
// address or a bracketed IPv6 address, nothing that could end the URL's
// authority or break a line.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '-', c == '_', c == ':', c == '[', c == ']':
		default:
			return false
		}
	}
	return true
}
