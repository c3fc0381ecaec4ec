package auth

import (
	"encoding/base64"
	"strings"
)

// parseAuthorization splits an Authorization header into its scheme
// (MethodBasic or MethodBearer; the scheme name is case-insensitive, RFC
// 9110 §11.1) and credentials. Headers over MaxTokenBytes are refused
// before anything else looks at them.
func parseAuthorization(h string) (scheme, cred string, err error) {
	if len(h) > MaxTokenBytes {
		return "", "", unauthenticated("Authorization header longer than %d bytes", MaxTokenBytes)
	}
	name, cred, ok := strings.Cut(h, " ")
	cred = strings.Trim(cred, " ")
	if !ok || cred == "" {
		return "", "", unauthenticated("malformed Authorization header")
	}
	switch strings.ToLower(name) {
	case "basic":
		return MethodBasic, cred, nil
	case "bearer":
		return MethodBearer, cred, nil
	}
	return "", "", unauthenticated("unsupported Authorization scheme")
}

// parseBasic decodes "base64(user:password)" (RFC 7617). The user name
// must be a valid one; the password may be empty only in the sense that
// it will not match any bcrypt hash.
func parseBasic(cred string) (user, pass string, err error) {
	raw, err := base64.StdEncoding.Strict().DecodeString(cred)
	if err != nil {
		return "", "", unauthenticated("basic auth: credentials are not base64")
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok || !validUserName(user) {
		return "", "", unauthenticated("basic auth: malformed user name")
	}
	return user, pass, nil
}
