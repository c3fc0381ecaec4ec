package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Actions are the rights an access rule can grant.
var Actions = []string{"pull", "push", "overwrite", "delete"}

func (t TLS) validate() []error {
	var errs []error
	if (t.CertFile == "") != (t.KeyFile == "") {
		errs = append(errs, errors.New("http.tls: cert_file and key_file go together"))
	}
	switch t.ClientAuth {
	case "none", "":
	case "verify_if_given", "require":
		if t.ClientCAFile == "" {
			errs = append(errs, fmt.Errorf("http.tls.client_auth: %q needs http.tls.client_ca_file", t.ClientAuth))
		}
		if !t.Enabled() {
			errs = append(errs, errors.New("http.tls.client_auth: needs http.tls.cert_file and key_file"))
		}
	default:
		errs = append(errs, fmt.Errorf("http.tls.client_auth: %q is not one of none, verify_if_given, require", t.ClientAuth))
	}
	switch t.MinVersion {
	case "1.2", "1.3", "":
	default:
		errs = append(errs, fmt.Errorf("http.tls.min_version: %q is not one of 1.2, 1.3", t.MinVersion))
	}
	return errs
}

func (a Auth) validate() []error {
	var errs []error
	validActions := func(key string, acts []string) {
		for _, act := range acts {
			ok := false
			for _, k := range Actions {
				ok = ok || act == k
			}
			if !ok {
				errs = append(errs, fmt.Errorf("%s: %q is not one of %s", key, act, strings.Join(Actions, ", ")))
			}
		}
	}
	for g, users := range a.Groups {
		if g == "" || strings.ContainsAny(g, ":*") {
			errs = append(errs, fmt.Errorf("auth.groups: %q is not a valid group name", g))
		}
		for _, u := range users {
			if u == "" || strings.ContainsAny(u, ":*") {
				errs = append(errs, fmt.Errorf("auth.groups.%s: %q is not a valid user name", g, u))
			}
		}
	}
	for _, adm := range a.Admins {
		if g, ok := strings.CutPrefix(adm, "group:"); ok {
			if _, known := a.Groups[g]; !known {
				errs = append(errs, fmt.Errorf("auth.admins: no group %q in auth.groups", g))
			}
		} else if adm == "" || strings.ContainsAny(adm, ":*") {
			errs = append(errs, fmt.Errorf("auth.admins: %q is not a valid user name", adm))
		}
	}
	for i, r := range a.Access {
		key := fmt.Sprintf("auth.access[%d]", i)
		if len(r.Repositories) == 0 {
			errs = append(errs, fmt.Errorf("%s.repositories: at least one pattern is required", key))
		}
		for _, p := range r.Repositories {
			if err := ValidatePattern(p); err != nil {
				errs = append(errs, fmt.Errorf("%s.repositories: %w", key, err))
			}
		}
		validActions(key+".anonymous", r.Anonymous)
		for u, acts := range r.Users {
			validActions(key+".users."+u, acts)
		}
		for g, acts := range r.Groups {
			if _, known := a.Groups[g]; !known {
				errs = append(errs, fmt.Errorf("%s.groups: no group %q in auth.groups", key, g))
			}
			validActions(key+".groups."+g, acts)
		}
	}
	if a.Token.Realm != "" {
		u, err := url.Parse(a.Token.Realm)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("auth.token.realm: %q is not an absolute http(s) URL", a.Token.Realm))
		}
	}
	if a.Token.Service == "" || strings.ContainsAny(a.Token.Service, "\",\\ \t\r\n") {
		errs = append(errs, errors.New("auth.token.service: required, without spaces, quotes or commas"))
	}
	if a.Token.Issuer == "" {
		errs = append(errs, errors.New("auth.token.issuer: required"))
	}
	if a.Token.Expiry <= 0 {
		errs = append(errs, errors.New("auth.token.expiry: must be positive"))
	}
	for i, is := range a.External {
		key := fmt.Sprintf("auth.external[%d]", i)
		if is.Issuer == "" {
			errs = append(errs, fmt.Errorf("%s.issuer: required", key))
		}
		if is.Audience == "" {
			errs = append(errs, fmt.Errorf("%s.audience: required", key))
		}
		if len(is.Keys) == 0 && is.JWKSFile == "" {
			errs = append(errs, fmt.Errorf("%s: keys or jwks_file is required", key))
		}
		for j, k := range is.Keys {
			if k.KID == "" || k.PublicKeyFile == "" {
				errs = append(errs, fmt.Errorf("%s.keys[%d]: kid and public_key_file are required", key, j))
			}
			switch k.Alg {
			case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA":
			default:
				errs = append(errs, fmt.Errorf("%s.keys[%d].alg: %q is not an asymmetric JWS algorithm (RS256, PS256, ES256, EdDSA, …)", key, j, k.Alg))
			}
		}
	}
	return errs
}

// ValidatePattern checks a repository pattern: path segments of name
// characters, "*" and "**" (a whole segment).
func ValidatePattern(p string) error {
	if p == "" || len(p) > 255 {
		return fmt.Errorf("pattern %q: empty or longer than 255 characters", p)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" {
			return fmt.Errorf("pattern %q: empty path segment", p)
		}
		if strings.Contains(seg, "**") && seg != "**" {
			return fmt.Errorf("pattern %q: ** must be a whole path segment", p)
		}
		for _, c := range seg {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == '*') {
				return fmt.Errorf("pattern %q: %q is not allowed (lowercase letters, digits, . _ - * and /)", p, c)
			}
		}
	}
	return nil
}
