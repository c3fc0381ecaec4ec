// Package auth decides who a request comes from and what it may do:
// authenticators (htpasswd over Basic, bearer tokens of Berth's own token
// service or of configured external issuers, verified client
// certificates), the per-repository access policy, and the token issuer
// of the Docker registry token flow (/auth/token). It imports nothing
// from the rest of Berth; the server converts config.Auth into Config.
//
// # What it trusts
//
//   - The configuration: the htpasswd file, groups, admins, rules, the
//     token signing key, and each external issuer's name, audience and
//     public keys. Nothing a request carries adds to these.
//   - The htpasswd file as it is now: it is stat'ed (mtime, size, inode)
//     on every password or own-token check and re-read when it changed,
//     so a removed user is refused at the next request and a changed
//     password at once. A file that cannot be read lets nobody in. Only
//     bcrypt lines ($2a$, $2b$, $2y$, cost ≤ 16) are loaded; others are
//     skipped with a warning. Passwords over 72 bytes are refused (bcrypt
//     would ignore the rest).
//   - A client certificate only when the TLS stack verified its chain
//     against the configured CA: the leaf's CommonName is the user name.
//   - An external issuer for the subjects it names (they share the user
//     namespace with htpasswd users), and, with TrustAccess, for the
//     rights its access claim lists.
//
// Verified Basic credentials are remembered for five minutes under an
// HMAC (a per-process random key) of user, password and htpasswd line,
// so clients that send Basic on every request (crane, podman) cost one
// bcrypt comparison, not one per request; the cache holds at most 4096
// entries and is emptied on every reload. bcrypt comparisons run at most
// GOMAXPROCS/2 at a time, so a flood of wrong passwords cannot take every
// core. An unknown user costs the same comparison (against a dummy hash
// at the cost of a user its name picks, so that mixed costs do not tell
// names apart by time) and gets the same answer as a wrong password: no
// user enumeration.
//
// # Policy
//
// Rules map repository patterns to actions (pull, push, overwrite,
// delete) for anonymous requests, users ("*": any authenticated user) and
// groups. Overwrite is pushing a tag that already exists. A principal's
// rights on a repository are the union over every rule with a matching
// pattern; anonymous rights apply to everyone; admins (by name or
// "group:NAME") may do everything; nothing is granted that no rule
// names. Patterns are matched per '/' segment: "*" matches any run of
// characters within a segment, a "**" segment matches one or more whole
// segments ("apps/**" matches "apps/x" and "apps/x/y", not "apps").
// Repository names with empty, "." or ".." segments match nothing.
//
// Allowed evaluates the rules at every call. For a bearer principal the
// result is also intersected with the token's access claim: a token
// never grants more than the rules grant its subject now, and never more
// than it lists. Clients never ask for an overwrite scope, so push in
// the token stands for overwrite where the rules grant overwrite (but
// for a TrustAccess issuer, whose claim must list overwrite itself).
//
// # Tokens
//
// Tokens are JWTs made and checked with github.com/golang-jwt/jwt/v5,
// the library DESIGN.md names: maintained, with the CVE-2025-30204 fix,
// and with typed parser options (valid methods, issuer, audience,
// expiration required, leeway, strict base64) so every check below is a
// library option rather than hand-written claim code.
//
// Berth's own tokens are signed with the configured key (EC P-256:
// ES256, RSA ≥ 2048: RS256, Ed25519: EdDSA) or with a P-256 key generated
// once and kept at DefaultKeyPath. The kid header is the key's RFC 7638
// thumbprint. Claims: iss, sub, aud [service], exp, nbf, iat, jti,
// access (the Docker format: [{type,name,actions}]), berth_authn (how
// the subject authenticated: htpasswd, cert, anonymous) and, for
// htpasswd subjects, berth_entry (an HMAC of the user's htpasswd line
// under a key derived from the signing key). The token endpoint grants
// the intersection of the requested scopes and the rules; "*" asks for
// every action; unknown types and actions are dropped; registry:catalog:*
// goes to anyone who may pull somewhere. There are no refresh tokens.
//
// Verifying a bearer token, in order:
//
//  1. Tokens (and Authorization headers) over 8 KiB are refused before
//     any parsing.
//  2. An unverified parse reads only iss and the header. A header with
//     jwk, jku, x5u, x5c or crit is refused outright (not merely
//     ignored): keys come from the configuration only (CVE-2025-24976).
//  3. The key is chosen by (iss, kid) from the configuration alone: our
//     own key for our issuer (the kid must be its thumbprint), else the
//     named external issuer's key with that kid. A kid of another issuer
//     finds nothing.
//  4. The verified parse pins the algorithm to that key's (so "none",
//     HS256 keyed with the public key, or another family are refused),
//     checks the signature, iss, aud, requires exp, and honours nbf and
//     iat with 30 s of leeway.
//  5. Own tokens are then checked against the present: an htpasswd
//     subject must still be in the file with the same line (so removing
//     a user or changing a password revokes outstanding tokens).
//
// Authenticate returns an error wrapping ErrUnauthenticated for any
// credentials that do not verify; its message is a reason for the logs
// and never holds a password or a token.
package auth
