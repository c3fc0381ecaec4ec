package auth

import (
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func FuzzParseScope(f *testing.F) {
	for _, s := range []string{"repository:a/b:pull,push", "registry:catalog:*", "repository(plugin):x:pull", "a:b:c:d", "::", "repository:a:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := ParseScope(s)
		if err != nil {
			return
		}
		if sc.Type == "" || sc.Name == "" || len(sc.Actions) == 0 {
			t.Fatalf("accepted an empty part: %+v", sc)
		}
		// What it accepts can be quoted into a challenge and read back.
		if strings.ContainsAny(sc.String(), "\" \\\r\n") {
			t.Fatalf("unquotable scope %q", sc.String())
		}
		again, err := ParseScope(sc.String())
		if err != nil || again.String() != sc.String() {
			t.Fatalf("round trip %q → %q (%v)", s, again.String(), err)
		}
	})
}

// FuzzAuthorization: any Authorization header (Basic or Bearer or other)
// never panics, and is accepted only as exactly the known credentials.
func FuzzAuthorization(f *testing.F) {
	fx := newFixture(f)
	good := fx.token("alice", authnHtpasswd, repoScope("team/a", Pull))
	for _, s := range []string{basic("alice", "alice-secret"), basic("alice", "x"), "Bearer " + good, "Basic", "Bearer ", "bearer a.b.c", "Basic Og==", "Digest x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		p, err := fx.svc.Authenticate(request(h))
		if err != nil {
			if !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("error not wrapping ErrUnauthenticated: %v", err)
			}
			return
		}
		switch p.Method {
		case MethodAnonymous: // a header the request library dropped, or empty Basic credentials
			if hv := request(h).Header.Get("Authorization"); hv != "" && !anonymousBasic(hv) {
				t.Fatalf("header %q gave anonymous", h)
			}
		case MethodBasic:
			if p.Name != "alice" && p.Name != "bob" && p.Name != "carol" && p.Name != "dave" && p.Name != "eve" && p.Name != "root" {
				t.Fatalf("unknown user %q accepted", p.Name)
			}
		case MethodBearer:
			if _, tok, _ := strings.Cut(h, " "); strings.TrimSpace(tok) != good {
				t.Fatalf("accepted a token that was never issued: %q", h)
			}
		}
	})
}

// FuzzVerifyToken: arbitrary bytes as a bearer token never panic and are
// never accepted, whoever the configured issuers are.
func FuzzVerifyToken(f *testing.F) {
	fx := newFixture(f, func(c *Config) {
		edPub, _, _ := ed25519.GenerateKey(rand.Reader)
		c.External = []IssuerConfig{{Issuer: "https://idp.test", Audience: "berth.test", JWKSFile: writeFile(f, f.TempDir(), "jwks.json",
			jwksJSON(f, rfc7638JWK, edJWK(edPub, "d"), ecJWK(&newECKey(f, elliptic.P256()).PublicKey, "e", "ES256")))}}
	})
	issued := map[string]bool{
		fx.token("alice", authnHtpasswd, repoScope("team/a", Pull)): true,
		fx.token("", authnAnonymous, repoScope("apps/x", Pull)):     true,
		fx.token("carol", authnCert):                                true,
	}
	for tok := range issued {
		f.Add(tok)
	}
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
	f.Add("a.b.c")
	f.Add(strings.Repeat(".", 100))
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := fx.svc.verifyToken(tok)
		if err == nil && !issued[tok] {
			// Only tokens the service issued verify: anything else that
			// does is a forgery.
			t.Fatalf("accepted a token that was never issued: %q as %+v", tok, p)
		}
		if err != nil && !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("error not wrapping ErrUnauthenticated: %v", err)
		}
	})
}

func FuzzParseJWKS(f *testing.F) {
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	f.Add([]byte(jwksJSON(f, rfc7638JWK, edJWK(edPub, "d"), ecJWK(&newECKey(f, elliptic.P384()).PublicKey, "e", "ES384"))))
	f.Add([]byte(`{"keys":[]}`))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"AA"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := ParseJWKS(data)
		if err != nil {
			return
		}
		kids := map[string]bool{}
		for _, k := range keys {
			if k.KID == "" || kids[k.KID] {
				t.Fatalf("empty or duplicate kid %q", k.KID)
			}
			kids[k.KID] = true
			if err := checkKeyAlg(k.Key, k.Alg); err != nil {
				t.Fatalf("key %q does not fit its alg: %v", k.KID, err)
			}
		}
	})
}

func FuzzParseHtpasswd(f *testing.F) {
	f.Add([]byte("alice:" + hashPW(f, "x") + "\nbob:{SHA}abc\n# c\n\n"))
	f.Add([]byte("a:$2y$04$" + strings.Repeat("a", 53)))
	f.Add([]byte(":::\r\n\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		users, _ := parseHtpasswd(data)
		for _, cost := range userCosts(users) {
			if cost < bcrypt.MinCost || cost > maxBcryptCost {
				t.Fatalf("cost %d", cost)
			}
		}
		for u, h := range users {
			if !validUserName(u) {
				t.Fatalf("invalid user %q loaded", u)
			}
			s := string(h)
			if len(s) != 60 || !(strings.HasPrefix(s, "$2a$") || strings.HasPrefix(s, "$2b$") || strings.HasPrefix(s, "$2y$")) {
				t.Fatalf("non-bcrypt hash loaded for %q: %q", u, s)
			}
		}
	})
}

// rfc7638JWK is the RSA key of RFC 7638 §3.1 (2048 bits): fuzz setups
// must stay cheap, and generating an RSA key is not.
var rfc7638JWK = map[string]any{"kty": "RSA", "kid": "2011-04-29", "alg": "RS256", "e": "AQAB",
	"n": rfc7638N}

const rfc7638N = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
