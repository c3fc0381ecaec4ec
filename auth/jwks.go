package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
)

const (
	maxJWKSBytes = 1 << 20
	maxJWKSKeys  = 100
)

// JWK is one verification key of a JSON Web Key Set.
type JWK struct {
	KID, Alg string
	Key      any // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// ParseJWKS reads a JSON Web Key Set (RFC 7517) strictly: member names are
// matched exactly (encoding/json would match "KID" for "kid"), a member
// twice in one object is an error, and every key needs kid and alg, with
// a key type and curve that fit the alg (RSA ≥ 2048 bits; EC P-256, P-384,
// P-521 with the point on the curve; OKP Ed25519). A key with private
// members (d, p, q, …) or of type "oct" is refused: a JWKS file holds
// public keys only. "use", when present, must be "sig" and "key_ops" must
// hold "verify". Unknown members are ignored (RFC 7517 §4), which includes
// x5c, x5t and x5u: nothing here fetches or trusts a certificate chain.
func ParseJWKS(data []byte) ([]JWK, error) {
	if len(data) > maxJWKSBytes {
		return nil, fmt.Errorf("larger than %d bytes", maxJWKSBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var keys []JWK
	seenKeys := false
	err := readObject(dec, func(name string, raw json.RawMessage) error {
		if name != "keys" {
			return nil
		}
		seenKeys = true
		kd := json.NewDecoder(bytes.NewReader(raw))
		if err := expectDelim(kd, '['); err != nil {
			return fmt.Errorf("keys: %w", err)
		}
		for kd.More() {
			if len(keys) == maxJWKSKeys {
				return fmt.Errorf("more than %d keys", maxJWKSKeys)
			}
			k, err := parseJWK(kd)
			if err != nil {
				return fmt.Errorf("keys[%d]: %w", len(keys), err)
			}
			keys = append(keys, k)
		}
		return expectDelim(kd, ']')
	})
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the key set")
	}
	if !seenKeys {
		return nil, errors.New(`no "keys" member`)
	}
	for i, k := range keys {
		for _, o := range keys[:i] {
			if o.KID == k.KID {
				return nil, fmt.Errorf("kid %q twice", k.KID)
			}
		}
	}
	return keys, nil
}

func expectDelim(dec *json.Decoder, d json.Delim) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if t != d {
		return fmt.Errorf("want %q", d)
	}
	return nil
}

// readObject walks one JSON object, refusing duplicate member names.
func readObject(dec *json.Decoder, member func(name string, raw json.RawMessage) error) error {
	if err := expectDelim(dec, '{'); err != nil {
		return fmt.Errorf("want an object: %w", err)
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		name, ok := t.(string)
		if !ok {
			return errors.New("want a member name")
		}
		if seen[name] {
			return fmt.Errorf("member %q twice", name)
		}
		seen[name] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return err
		}
		if err := member(name, raw); err != nil {
			return err
		}
	}
	return expectDelim(dec, '}')
}

var privateJWKMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

func parseJWK(dec *json.Decoder) (JWK, error) {
	str := map[string]string{}
	var keyOps []string
	hasOps := false
	err := readObject(dec, func(name string, raw json.RawMessage) error {
		switch {
		case slices.Contains(privateJWKMembers, name):
			return fmt.Errorf("private key member %q: a JWKS file must hold public keys only", name)
		case name == "key_ops":
			hasOps = true
			return strictString(raw, &keyOps)
		case slices.Contains([]string{"kty", "kid", "alg", "use", "crv", "x", "y", "n", "e"}, name):
			var s string
			if err := strictString(raw, &s); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			str[name] = s
		}
		return nil
	})
	if err != nil {
		return JWK{}, err
	}
	k := JWK{KID: str["kid"], Alg: str["alg"]}
	if k.KID == "" || k.Alg == "" {
		return JWK{}, errors.New("kid and alg are required")
	}
	if u, ok := str["use"]; ok && u != "sig" {
		return JWK{}, fmt.Errorf("kid %q: use %q is not sig", k.KID, u)
	}
	if hasOps && !slices.Contains(keyOps, "verify") {
		return JWK{}, fmt.Errorf("kid %q: key_ops without verify", k.KID)
	}
	b64 := func(name string) ([]byte, error) {
		v, ok := str[name]
		if !ok || v == "" {
			return nil, fmt.Errorf("kid %q: %s is required", k.KID, name)
		}
		b, err := base64.RawURLEncoding.Strict().DecodeString(v)
		if err != nil {
			return nil, fmt.Errorf("kid %q: %s is not base64url: %w", k.KID, name, err)
		}
		return b, nil
	}
	switch str["kty"] {
	case "RSA":
		n, err := b64("n")
		if err != nil {
			return JWK{}, err
		}
		e, err := b64("e")
		if err != nil {
			return JWK{}, err
		}
		if len(e) > 4 || n[0] == 0 || e[0] == 0 {
			return JWK{}, fmt.Errorf("kid %q: malformed RSA n or e", k.KID)
		}
		ei := int(new(big.Int).SetBytes(e).Int64())
		if ei < 3 || ei%2 == 0 {
			return JWK{}, fmt.Errorf("kid %q: RSA exponent %d", k.KID, ei)
		}
		k.Key = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: ei}
	case "EC":
		curve, ok := map[string]elliptic.Curve{"P-256": elliptic.P256(), "P-384": elliptic.P384(), "P-521": elliptic.P521()}[str["crv"]]
		if !ok {
			return JWK{}, fmt.Errorf("kid %q: EC curve %q (P-256, P-384, P-521)", k.KID, str["crv"])
		}
		x, err := b64("x")
		if err != nil {
			return JWK{}, err
		}
		y, err := b64("y")
		if err != nil {
			return JWK{}, err
		}
		size := (curve.Params().BitSize + 7) / 8
		if len(x) != size || len(y) != size {
			return JWK{}, fmt.Errorf("kid %q: EC coordinates must be %d bytes", k.KID, size)
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
		if err != nil {
			return JWK{}, fmt.Errorf("kid %q: %w", k.KID, err)
		}
		k.Key = pub
	case "OKP":
		if str["crv"] != "Ed25519" {
			return JWK{}, fmt.Errorf("kid %q: OKP curve %q (Ed25519)", k.KID, str["crv"])
		}
		x, err := b64("x")
		if err != nil {
			return JWK{}, err
		}
		if len(x) != ed25519.PublicKeySize {
			return JWK{}, fmt.Errorf("kid %q: Ed25519 key must be %d bytes", k.KID, ed25519.PublicKeySize)
		}
		k.Key = ed25519.PublicKey(x)
	default:
		return JWK{}, fmt.Errorf("kid %q: key type %q (RSA, EC, OKP)", k.KID, str["kty"])
	}
	if err := checkKeyAlg(k.Key, k.Alg); err != nil {
		return JWK{}, fmt.Errorf("kid %q: %w", k.KID, err)
	}
	return k, nil
}

// strictString decodes a JSON string or array of strings, nothing else.
func strictString(raw json.RawMessage, v any) error {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	return d.Decode(v)
}
