package config

import (
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/berth-dev/berth/internal/pattern"
)

// Actions are the rights an access rule can grant.
var Actions = []string{"pull", "push", "overwrite", "delete"}

func (t TLS) validate() problems {
	var ps problems
	tls := path{"http", "tls"}
	if (t.CertFile == "") != (t.KeyFile == "") {
		if t.CertFile == "" {
			ps.add(tls.with("key_file"), "needs http.tls.cert_file (they go together)")
		} else {
			ps.add(tls.with("cert_file"), "needs http.tls.key_file (they go together)")
		}
	}
	switch t.ClientAuth {
	case "none", "":
	case "verify_if_given", "require":
		if t.ClientCAFile == "" {
			ps.add(tls.with("client_auth"), "%q needs http.tls.client_ca_file", t.ClientAuth)
		}
		if !t.Enabled() {
			ps.add(tls.with("client_auth"), "needs http.tls.cert_file and key_file")
		}
	default:
		ps.add(tls.with("client_auth"), "%q is not one of none, verify_if_given, require", t.ClientAuth)
	}
	switch t.MinVersion {
	case "1.2", "1.3", "":
	default:
		ps.add(tls.with("min_version"), "%q is not one of 1.2, 1.3", t.MinVersion)
	}
	return ps
}

func (a Auth) validate() problems {
	var ps problems
	validActions := func(key path, acts []string) {
		for j, act := range acts {
			if !slices.Contains(Actions, act) {
				ps.add(key.with(j), "%q is not one of %s", act, strings.Join(Actions, ", "))
			}
		}
	}
	for _, g := range slices.Sorted(maps.Keys(a.Groups)) {
		if g == "" || strings.ContainsAny(g, ":*") {
			ps.add(path{"auth", "groups", g}, "%q is not a valid group name", g)
		}
		for j, u := range a.Groups[g] {
			if u == "" || strings.ContainsAny(u, ":*") {
				ps.add(path{"auth", "groups", g, j}, "%q is not a valid user name", u)
			}
		}
	}
	for j, adm := range a.Admins {
		if g, ok := strings.CutPrefix(adm, "group:"); ok {
			if _, known := a.Groups[g]; !known {
				ps.add(path{"auth", "admins", j}, "no group %q in auth.groups", g)
			}
		} else if adm == "" || strings.ContainsAny(adm, ":*") {
			ps.add(path{"auth", "admins", j}, "%q is not a valid user name", adm)
		}
	}
	for i, r := range a.Access {
		key := path{"auth", "access", i}
		if len(r.Repositories) == 0 {
			ps.add(key.with("repositories"), "at least one pattern is required")
		}
		for j, p := range r.Repositories {
			if err := ValidatePattern(p); err != nil {
				ps.addErr(key.with("repositories", j), err)
			}
		}
		validActions(key.with("anonymous"), r.Anonymous)
		for _, u := range slices.Sorted(maps.Keys(r.Users)) {
			validActions(key.with("users", u), r.Users[u])
		}
		for _, g := range slices.Sorted(maps.Keys(r.Groups)) {
			if _, known := a.Groups[g]; !known {
				ps.add(key.with("groups", g), "no group %q in auth.groups", g)
			}
			validActions(key.with("groups", g), r.Groups[g])
		}
	}
	tok := path{"auth", "token"}
	if a.Token.Realm != "" {
		u, err := url.Parse(a.Token.Realm)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			ps.add(tok.with("realm"), "%q is not an absolute http(s) URL", a.Token.Realm)
		}
	}
	if a.Token.Service == "" || strings.ContainsAny(a.Token.Service, "\",\\ \t\r\n") {
		ps.add(tok.with("service"), "required, without spaces, quotes or commas")
	}
	if a.Token.Issuer == "" {
		ps.add(tok.with("issuer"), "required")
	}
	if a.Token.Expiry <= 0 {
		ps.add(tok.with("expiry"), "must be positive")
	}
	for i, is := range a.External {
		key := path{"auth", "external", i}
		if is.Issuer == "" {
			ps.add(key.with("issuer"), "required")
		}
		if is.Audience == "" {
			ps.add(key.with("audience"), "required")
		}
		if len(is.Keys) == 0 && is.JWKSFile == "" {
			ps.add(key, "keys or jwks_file is required")
		}
		for j, k := range is.Keys {
			if k.KID == "" || k.PublicKeyFile == "" {
				ps.add(key.with("keys", j), "kid and public_key_file are required")
			}
			switch k.Alg {
			case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA":
			default:
				ps.add(key.with("keys", j, "alg"), "%q is not an asymmetric JWS algorithm (RS256, PS256, ES256, EdDSA, …)", k.Alg)
			}
		}
	}
	return ps
}

// ValidatePattern checks a repository pattern: path segments of name
// characters, "*" and "**" (a whole segment).
func ValidatePattern(p string) error { return pattern.Validate(p) }
