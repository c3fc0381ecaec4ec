package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

var b64u = base64.RawURLEncoding.EncodeToString

func ecJWK(k *ecdsa.PublicKey, kid, alg string) map[string]any {
	size := (k.Curve.Params().BitSize + 7) / 8
	pt, _ := k.Bytes()
	return map[string]any{"kty": "EC", "crv": k.Curve.Params().Name, "kid": kid, "alg": alg, "use": "sig",
		"x": b64u(pt[1 : 1+size]), "y": b64u(pt[1+size:])}
}

func rsaJWK(k *rsa.PublicKey, kid, alg string) map[string]any {
	return map[string]any{"kty": "RSA", "kid": kid, "alg": alg, "n": b64u(k.N.Bytes()), "e": b64u(big.NewInt(int64(k.E)).Bytes())}
}

func edJWK(k ed25519.PublicKey, kid string) map[string]any {
	return map[string]any{"kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA", "x": b64u(k), "key_ops": []string{"verify"}}
}

func jwksJSON(t testing.TB, keys ...map[string]any) string {
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseJWKS(t *testing.T) {
	ec := newECKey(t, elliptic.P384())
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	good := jwksJSON(t, ecJWK(&ec.PublicKey, "e", "ES384"), rsaJWK(&rk.PublicKey, "r", "RS256"), edJWK(edPub, "d"))
	keys, err := ParseJWKS([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 || keys[0].KID != "e" || keys[1].Alg != "RS256" || keys[2].KID != "d" {
		t.Fatalf("keys %+v", keys)
	}
	if !keys[0].Key.(*ecdsa.PublicKey).Equal(&ec.PublicKey) || !keys[1].Key.(*rsa.PublicKey).Equal(&rk.PublicKey) || !keys[2].Key.(ed25519.PublicKey).Equal(edPub) {
		t.Fatal("keys differ from the ones encoded")
	}

	p256 := newECKey(t, elliptic.P256())
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	mod := func(k map[string]any, edit func(map[string]any)) map[string]any {
		c := map[string]any{}
		for a, b := range k {
			c[a] = b
		}
		edit(c)
		return c
	}
	base := ecJWK(&p256.PublicKey, "k", "ES256")
	offCurve := mod(base, func(m map[string]any) { m["y"] = m["x"] })
	bad := map[string]string{
		"not json":         `{"keys":[`,
		"no keys member":   `{"key":[]}`,
		"keys not array":   `{"keys":{}}`,
		"trailing data":    jwksJSON(t, base) + ` {}`,
		"duplicate member": strings.Replace(jwksJSON(t, base), `"kid":"k"`, `"kid":"k","kid":"other"`, 1),
		"duplicate keys":   `{"keys":[],"keys":[]}`,
		"KID uppercase":    strings.Replace(jwksJSON(t, base), `"kid"`, `"KID"`, 1),
		"no kid":           jwksJSON(t, mod(base, func(m map[string]any) { delete(m, "kid") })),
		"no alg":           jwksJSON(t, mod(base, func(m map[string]any) { delete(m, "alg") })),
		"alg for curve":    jwksJSON(t, mod(base, func(m map[string]any) { m["alg"] = "ES384" })),
		"alg for type":     jwksJSON(t, mod(base, func(m map[string]any) { m["alg"] = "RS256" })),
		"symmetric alg":    jwksJSON(t, mod(base, func(m map[string]any) { m["alg"] = "HS256" })),
		"alg none":         jwksJSON(t, mod(base, func(m map[string]any) { m["alg"] = "none" })),
		"private d":        jwksJSON(t, mod(base, func(m map[string]any) { m["d"] = "AAAA" })),
		"oct key":          jwksJSON(t, map[string]any{"kty": "oct", "kid": "s", "alg": "HS256", "k": "c2VjcmV0"}),
		"use enc":          jwksJSON(t, mod(base, func(m map[string]any) { m["use"] = "enc" })),
		"key_ops encrypt":  jwksJSON(t, mod(base, func(m map[string]any) { m["key_ops"] = []string{"encrypt"} })),
		"point off curve":  jwksJSON(t, offCurve),
		"short x":          jwksJSON(t, mod(base, func(m map[string]any) { m["x"] = "AAAA" })),
		"padded base64":    jwksJSON(t, mod(base, func(m map[string]any) { m["x"] = m["x"].(string) + "=" })),
		"kid not string":   strings.Replace(jwksJSON(t, base), `"kid":"k"`, `"kid":7`, 1),
		"duplicate kid":    jwksJSON(t, base, ecJWK(&ec.PublicKey, "k", "ES384")),
		"RSA 1024":         jwksJSON(t, rsaJWK(&small.PublicKey, "s", "RS256")),
		"RSA exponent 1":   jwksJSON(t, mod(rsaJWK(&rk.PublicKey, "r", "RS256"), func(m map[string]any) { m["e"] = "AQ" })),
		"Ed448":            jwksJSON(t, mod(edJWK(edPub, "d"), func(m map[string]any) { m["crv"] = "Ed448" })),
		"Ed25519 short":    jwksJSON(t, mod(edJWK(edPub, "d"), func(m map[string]any) { m["x"] = "AAAA" })),
		"unknown kty":      jwksJSON(t, mod(base, func(m map[string]any) { m["kty"] = "XX" })),
	}
	for name, data := range bad {
		if keys, err := ParseJWKS([]byte(data)); err == nil {
			t.Errorf("%s: accepted %+v", name, keys)
		}
	}
}

// TestJWKSIssuer: an issuer configured by a JWKS file verifies its tokens
// with the key its kid names, and only with the alg that key pins.
func TestJWKSIssuer(t *testing.T) {
	dir := t.TempDir()
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	ec := newECKey(t, elliptic.P256())
	jw := writeFile(t, dir, "jwks.json", jwksJSON(t, edJWK(edPub, "ed"), ecJWK(&ec.PublicKey, "ec", "ES256")))
	f := newFixture(t, func(c *Config) {
		c.External = []IssuerConfig{{Issuer: "https://jwks.test", Audience: "berth.test", JWKSFile: jw}}
	})
	c := f.extClaims("https://jwks.test", "berth.test", "alice", repoScope("team/a", Pull))
	if _, err := f.bearer(sign(t, jwt.SigningMethodEdDSA, "ed", c, edPriv, nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.bearer(sign(t, jwt.SigningMethodES256, "ec", c, ec, nil)); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, f, "ed kid, EC key", sign(t, jwt.SigningMethodES256, "ed", c, ec, nil))
	mustRefuse(t, f, "ec kid, Ed25519 key", sign(t, jwt.SigningMethodEdDSA, "ec", c, edPriv, nil))
	mustRefuse(t, f, "unknown kid", sign(t, jwt.SigningMethodEdDSA, "nope", c, edPriv, nil))

	// Config errors: a kid in the keys and in the JWKS, a missing file.
	pemPath := pemPublic(t, dir, "ec.pem", &ec.PublicKey)
	for name, ic := range map[string]IssuerConfig{
		"kid twice":    {Issuer: "i", Audience: "a", JWKSFile: jw, Keys: []KeyConfig{{KID: "ec", Alg: "ES256", PublicKeyFile: pemPath}}},
		"missing file": {Issuer: "i", Audience: "a", JWKSFile: dir + "/none.json"},
		"alg mismatch": {Issuer: "i", Audience: "a", Keys: []KeyConfig{{KID: "x", Alg: "RS256", PublicKeyFile: pemPath}}},
		"no keys":      {Issuer: "i", Audience: "a"},
		"no audience":  {Issuer: "i", JWKSFile: jw},
		"own issuer":   {Issuer: "berth-issuer", Audience: "a", JWKSFile: jw},
	} {
		cfg := testConfig(dir, "")
		cfg.External = []IssuerConfig{ic}
		if _, err := New(cfg, nil); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}
