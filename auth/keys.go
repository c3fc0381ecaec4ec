package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"

	"github.com/golang-jwt/jwt/v5"
)

// minRSABits refuses RSA keys too small to be trusted.
const minRSABits = 2048

// signingKey is the token service's private key.
type signingKey struct {
	priv   crypto.Signer
	pub    crypto.PublicKey
	method jwt.SigningMethod // ES256, RS256 or EdDSA: pinned when verifying
	kid    string            // RFC 7638 thumbprint
	der    []byte            // PKCS #8, to derive other keys from
}

func newSigningKey(priv any) (*signingKey, error) {
	k := &signingKey{}
	switch p := priv.(type) {
	case *ecdsa.PrivateKey:
		if p.Curve != elliptic.P256() {
			return nil, errors.New("EC keys must be on P-256 (ES256)")
		}
		k.priv, k.method = p, jwt.SigningMethodES256
	case *rsa.PrivateKey:
		if p.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA key of %d bits: at least %d are needed", p.N.BitLen(), minRSABits)
		}
		k.priv, k.method = p, jwt.SigningMethodRS256
	case ed25519.PrivateKey:
		k.priv, k.method = p, jwt.SigningMethodEdDSA
	default:
		return nil, fmt.Errorf("unsupported private key type %T (EC P-256, RSA or Ed25519)", priv)
	}
	k.pub = k.priv.Public()
	kid, err := thumbprint(k.pub)
	if err != nil {
		return nil, err
	}
	k.kid = kid
	if k.der, err = x509.MarshalPKCS8PrivateKey(priv); err != nil {
		return nil, err
	}
	return k, nil
}

// derive is a key for another purpose, bound to the signing key (it
// survives restarts as the signing key does, and changes with it).
func (k *signingKey) derive(label string) []byte {
	seed := sha256.Sum256(k.der)
	m := hmac.New(sha256.New, seed[:])
	m.Write([]byte(label))
	return m.Sum(nil)
}

// parsePrivateKeyPEM reads the first private key block of a PEM file.
func parsePrivateKeyPEM(data []byte) (any, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no PEM private key block")
		}
		if _, encrypted := b.Headers["Proc-Type"]; encrypted {
			return nil, errors.New("encrypted PEM keys are not supported")
		}
		switch b.Type {
		case "PRIVATE KEY":
			return x509.ParsePKCS8PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			return x509.ParseECPrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			return x509.ParsePKCS1PrivateKey(b.Bytes)
		}
	}
}

func loadSigningKey(path string) (*signingKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: token key: %w", err)
	}
	priv, err := parsePrivateKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("auth: token key %s: %w", path, err)
	}
	k, err := newSigningKey(priv)
	if err != nil {
		return nil, fmt.Errorf("auth: token key %s: %w", path, err)
	}
	return k, nil
}

// loadOrGenerateKey loads the key at path, generating a P-256 key there
// first if there is none (file 0600 in a directory created 0700). The key
// is published with a hard link from a complete temporary file, so a
// concurrent starter never reads a half-written key and never replaces
// one that tokens were already signed with.
func loadOrGenerateKey(path string, log *slog.Logger) (*signingKey, error) {
	if fi, err := os.Stat(path); err == nil {
		if fi.Mode().Perm()&0o077 != 0 {
			log.Warn("token key file is readable by others; chmod 600 it", "file", path, "mode", fi.Mode().Perm().String())
		}
		return loadSigningKey(path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("auth: token key: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("auth: token key directory: %w", err)
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("auth: generating the token key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("auth: encoding the token key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".token-key-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("auth: token key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("auth: token key: %w", err)
	}
	if err := pem.Encode(tmp, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("auth: writing the token key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("auth: writing the token key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("auth: writing the token key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("auth: publishing the token key: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	log.Info("generated the token signing key", "file", path)
	return loadSigningKey(path) // whichever key won a race with another starter
}

// thumbprint is the RFC 7638 JWK thumbprint (SHA-256, base64url) of pub:
// the SHA-256 of the required members, in lexicographic order, with no
// whitespace.
func thumbprint(pub crypto.PublicKey) (string, error) {
	b64 := base64.RawURLEncoding.EncodeToString
	var j string
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		size := (p.Curve.Params().BitSize + 7) / 8
		pt, err := p.Bytes() // 0x04 || X || Y, each padded to size
		if err != nil {
			return "", err
		}
		j = fmt.Sprintf(`{"crv":%q,"kty":"EC","x":%q,"y":%q}`, p.Curve.Params().Name, b64(pt[1:1+size]), b64(pt[1+size:]))
	case *rsa.PublicKey:
		e := big.NewInt(int64(p.E)).Bytes()
		j = fmt.Sprintf(`{"e":%q,"kty":"RSA","n":%q}`, b64(e), b64(p.N.Bytes()))
	case ed25519.PublicKey:
		j = fmt.Sprintf(`{"crv":"Ed25519","kty":"OKP","x":%q}`, b64(p))
	default:
		return "", fmt.Errorf("unsupported public key type %T", pub)
	}
	sum := sha256.Sum256([]byte(j))
	return b64(sum[:]), nil
}

// parsePublicKeyPEM reads the first public key of a PEM file: PKIX
// ("PUBLIC KEY"), PKCS #1 ("RSA PUBLIC KEY") or a certificate's key.
func parsePublicKeyPEM(data []byte) (any, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no PEM public key block")
		}
		switch b.Type {
		case "PUBLIC KEY":
			return x509.ParsePKIXPublicKey(b.Bytes)
		case "RSA PUBLIC KEY":
			return x509.ParsePKCS1PublicKey(b.Bytes)
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, err
			}
			return c.PublicKey, nil
		}
	}
}

// checkKeyAlg: the key's type fits the algorithm pinned for it.
func checkKeyAlg(key any, alg string) error {
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		k, ok := key.(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("alg %s needs an RSA key, not %T", alg, key)
		}
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key of %d bits: at least %d are needed", k.N.BitLen(), minRSABits)
		}
	case "ES256", "ES384", "ES512":
		k, ok := key.(*ecdsa.PublicKey)
		want := map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()}[alg]
		if !ok || k.Curve != want {
			return fmt.Errorf("alg %s needs an EC key on %s", alg, want.Params().Name)
		}
	case "EdDSA":
		if _, ok := key.(ed25519.PublicKey); !ok {
			return fmt.Errorf("alg EdDSA needs an Ed25519 key, not %T", key)
		}
	default:
		return fmt.Errorf("alg %q is not an asymmetric JWS algorithm Berth accepts", alg)
	}
	return nil
}

// issuer is an external issuer with its keys by kid.
type issuer struct {
	cfg  IssuerConfig
	keys map[string]verifyKey
}

type verifyKey struct {
	alg string
	key any
}

func loadIssuer(ic IssuerConfig) (*issuer, error) {
	if ic.Issuer == "" || ic.Audience == "" {
		return nil, errors.New("issuer and audience are required")
	}
	is := &issuer{cfg: ic, keys: map[string]verifyKey{}}
	add := func(kid, alg string, key any) error {
		if kid == "" {
			return errors.New("a key without kid")
		}
		if _, dup := is.keys[kid]; dup {
			return fmt.Errorf("kid %q twice", kid)
		}
		if err := checkKeyAlg(key, alg); err != nil {
			return fmt.Errorf("kid %q: %w", kid, err)
		}
		is.keys[kid] = verifyKey{alg: alg, key: key}
		return nil
	}
	for _, k := range ic.Keys {
		data, err := os.ReadFile(k.PublicKeyFile)
		if err != nil {
			return nil, fmt.Errorf("kid %q: %w", k.KID, err)
		}
		pub, err := parsePublicKeyPEM(data)
		if err != nil {
			return nil, fmt.Errorf("kid %q: %s: %w", k.KID, k.PublicKeyFile, err)
		}
		if err := add(k.KID, k.Alg, pub); err != nil {
			return nil, err
		}
	}
	if ic.JWKSFile != "" {
		data, err := os.ReadFile(ic.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("jwks: %w", err)
		}
		keys, err := ParseJWKS(data)
		if err != nil {
			return nil, fmt.Errorf("jwks %s: %w", ic.JWKSFile, err)
		}
		for _, k := range keys {
			if err := add(k.KID, k.Alg, k.Key); err != nil {
				return nil, fmt.Errorf("jwks %s: %w", ic.JWKSFile, err)
			}
		}
	}
	if len(is.keys) == 0 {
		return nil, errors.New("no keys")
	}
	return is, nil
}
