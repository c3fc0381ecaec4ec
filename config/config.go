// Package config owns Berth's configuration: the typed YAML file, the
// defaults, the BERTH_* environment overrides and validation. It knows
// nothing of the components it configures.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole configuration. Every key has a default, so an empty
// file (or none) is valid.
type Config struct {
	HTTP    HTTP    `yaml:"http"`
	Auth    Auth    `yaml:"auth"`
	Storage Storage `yaml:"storage"`
	// Metadata: where manifests, tags and links are recorded (SQLite in
	// storage.dir unless metadata.postgres is set).
	Metadata   Metadata   `yaml:"metadata"`
	Log        Log        `yaml:"log"`
	Limits     Limits     `yaml:"limits"`
	Validation Validation `yaml:"validation"`
	GC         GC         `yaml:"gc"`
	Uploads    Uploads    `yaml:"uploads"`
	Flatpak    Flatpak    `yaml:"flatpak"`
	// Metrics: Prometheus /metrics and the health probes.
	Metrics Metrics `yaml:"metrics"`
	// Notifications: webhooks fed from the events outbox.
	Notifications Notifications `yaml:"notifications"`
}

// Metrics configures /metrics (Prometheus) and where the probes /livez
// and /readyz are also served.
type Metrics struct {
	// Enabled serves /metrics.
	Enabled bool `yaml:"enabled"`
	// Addr, when set, is a separate listener (host:port) for /metrics,
	// /livez and /readyz; /metrics then leaves the main listener. Empty:
	// all on the main listener.
	Addr string `yaml:"addr"`
	// Access is who may read /metrics on the main listener when
	// authentication is on: "anonymous", "authenticated" or "admin"
	// (auth.admins). The separate listener (Addr) is not authenticated.
	Access string `yaml:"access"`
}

// Notifications configures webhook delivery.
type Notifications struct {
	// Endpoints receive the events that match their filters.
	Endpoints []Endpoint `yaml:"endpoints"`
	// Backlog bounds the undelivered events kept per endpoint; past it
	// the oldest are dropped (and counted in a metric).
	Backlog int `yaml:"backlog"`
}

// Endpoint is one webhook receiver.
type Endpoint struct {
	// Name identifies the endpoint in logs and metrics.
	Name string `yaml:"name"`
	// URL is the http(s) URL events are POSTed to. Redirects are not
	// followed.
	URL string `yaml:"url"`
	// Secret keys the HMAC-SHA256 signature header; SecretFile reads it
	// from a file instead.
	Secret     string `yaml:"secret"`
	SecretFile string `yaml:"secret_file"`
	// Events to send (manifest.push, tag.update, manifest.delete,
	// tag.delete, blob.delete, gc.run); empty: all.
	Events []string `yaml:"events"`
	// Repositories: patterns as in auth.access; empty: all.
	Repositories []string `yaml:"repositories"`
	// Timeout bounds one delivery attempt.
	Timeout time.Duration `yaml:"timeout"`
	// AllowPrivate allows targets on loopback, private, link-local and
	// other non-public addresses (refused by default).
	AllowPrivate bool `yaml:"allow_private"`
}

// Flatpak configures the Flatpak remote: the registry index (/index/static,
// /index/dynamic), icons, and the .flatpakrepo/.flatpakref files.
type Flatpak struct {
	// Enabled serves the Flatpak remote (anonymously, as the flatpak
	// client fetches the index and icons without credentials).
	Enabled bool `yaml:"enabled"`
	// PublicURL is the absolute URL clients reach Berth at, e.g.
	// https://registry.example.com (a path prefix is allowed). The index's
	// Registry field and icon URLs are built from it; empty makes them
	// relative in the index, and the .flatpakrepo/.flatpakref files and the
	// catalogue's commands take each request's Host (see
	// http.trust_forwarded_headers).
	PublicURL string `yaml:"public_url"`
	// Title names the remote in the .flatpakrepo file.
	Title string `yaml:"title"`
	// RemoteName is the remote name .flatpakref files suggest.
	RemoteName string `yaml:"remote_name"`
	// IndexCacheBytes bounds the memory of cached, gzipped index answers;
	// 0 disables the cache.
	IndexCacheBytes int64 `yaml:"index_cache_bytes"`
	// Deltas: delta updates made for new images of Flatpak refs.
	Deltas Deltas `yaml:"deltas"`
}

// Deltas configures Flatpak delta generation (package delta): when a new
// image of a ref is pushed under a tag, deltas from earlier images of the
// same ref are made in the background, verified and published in the
// repository's _deltaindex.
type Deltas struct {
	// Enabled makes deltas (only while the Flatpak remote is enabled).
	Enabled bool `yaml:"enabled"`
	// Versions is how many earlier images of a ref a new one gets deltas
	// from (the newest first).
	Versions int `yaml:"versions"`
	// Window limits those to images pushed within this long before the
	// new one; 0: no limit.
	Window time.Duration `yaml:"window"`
	// MaxLayerBytes: layers (compressed) larger than this are not diffed.
	MaxLayerBytes int64 `yaml:"max_layer_bytes"`
	// MaxRatio: a delta larger than this fraction of the layer it
	// replaces is not published.
	MaxRatio float64 `yaml:"max_ratio"`
	// Concurrency is how many deltas are made at once.
	Concurrency int `yaml:"concurrency"`
	// RetireAfter is how long a delta manifest no longer listed in
	// _deltaindex is kept (for clients that read the previous index).
	RetireAfter time.Duration `yaml:"retire_after"`
}

// GC configures garbage collection (berth gc, and the schedule in serve).
type GC struct {
	// Interval between runs in berth serve; 0 disables the schedule.
	Interval time.Duration `yaml:"interval"`
	// Grace protects links, blobs and orphan files younger than this (a
	// push in progress), and referrers of a deleted subject.
	Grace time.Duration `yaml:"grace"`
	// UntaggedAfter deletes manifests no tag, index or subject keeps once
	// they are this old; 0 keeps them forever.
	UntaggedAfter time.Duration `yaml:"untagged_after"`
	// ClaimLease is how long a run's claim on the blobs it deletes lasts;
	// after it another run (another replica, berth gc) may take them over.
	ClaimLease time.Duration `yaml:"claim_lease"`
}

// Uploads configures upload sessions.
type Uploads struct {
	// ExpireAfter deletes sessions (and their data) idle for this long.
	ExpireAfter time.Duration `yaml:"expire_after"`
	// MaxPerRepository and MaxPerClient cap open upload sessions in one
	// repository and of one client (its user name, else its address);
	// more answer 429 TOOMANYREQUESTS. 0 disables a cap.
	MaxPerRepository int `yaml:"max_per_repository"`
	MaxPerClient     int `yaml:"max_per_client"`
	// IdleTimeout ends an upload request whose client sends no byte for
	// this long (the session stays, to be resumed).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
}

// Validation sets how strictly pushed content is checked.
type Validation struct {
	// SparseManifests accepts image manifests whose layers are not in the
	// repository (the config blob is always required). Off by default: a
	// push that forgot a layer is refused with MANIFEST_BLOB_UNKNOWN.
	SparseManifests bool `yaml:"sparse_manifests"`
}

// HTTP configures the listener.
type HTTP struct {
	// Addr is the listen address, host:port; port 0 picks a free one.
	Addr string `yaml:"addr"`
	// ShutdownTimeout bounds the wait for in-flight requests on shutdown.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// ReadHeaderTimeout bounds reading request headers.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// IdleTimeout closes idle keep-alive connections.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// TrustForwardedHeaders takes the scheme and host clients use from
	// X-Forwarded-Proto and X-Forwarded-Host (where flatpak.public_url is
	// empty): only for a Berth that a proxy fronts, which sets them and
	// drops any a client sends. Off by default.
	TrustForwardedHeaders bool `yaml:"trust_forwarded_headers"`
	// MaxHeaderBytes caps the request line and headers; larger requests
	// get 431.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MinBodyRate (bytes/s) and BodyRateWindow cut a request body that
	// delivers fewer than MinBodyRate×BodyRateWindow bytes in any window
	// (a client trickling an upload to hold it open); 0 disables.
	MinBodyRate    int64         `yaml:"min_body_rate"`
	BodyRateWindow time.Duration `yaml:"body_rate_window"`
	// WriteStallTimeout cuts a response whose client has accepted no byte
	// for this long (the write deadline moves with progress, so a slow but
	// moving download is never cut).
	WriteStallTimeout time.Duration `yaml:"write_stall_timeout"`
	// TLS serves HTTPS when a certificate and key are set.
	TLS TLS `yaml:"tls"`
}

// TLS configures HTTPS. The certificate and key are reloaded on SIGHUP and
// when their files change.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile is a PEM bundle of the CAs that sign client
	// certificates; a verified client certificate authenticates its
	// subject's common name as a user (see auth).
	ClientCAFile string `yaml:"client_ca_file"`
	// ClientAuth: "none" (default), "verify_if_given" (a client
	// certificate is optional and verified when sent) or "require".
	ClientAuth string `yaml:"client_auth"`
	// MinVersion: "1.2" (default) or "1.3".
	MinVersion string `yaml:"min_version"`
}

// Enabled reports whether HTTPS is configured.
func (t TLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// Auth configures authentication and per-repository access. With nothing
// set, Berth is open (anyone may pull, push and delete) and says so at
// start; set any key and every request is checked against Access, with
// no rights for anyone the rules do not name.
type Auth struct {
	// Htpasswd is an htpasswd file of bcrypt users (Basic auth and the
	// token endpoint), re-read when it changes.
	Htpasswd string `yaml:"htpasswd"`
	// Groups name sets of users for the access rules.
	Groups map[string][]string `yaml:"groups"`
	// Admins may do everything everywhere: user names, or "group:NAME".
	Admins []string `yaml:"admins"`
	// Access rules: each grants actions on the repositories matching its
	// patterns. Rights add up over every matching rule.
	Access []AccessRule `yaml:"access"`
	// Token is Berth's own token service (the Docker registry token flow).
	Token Token `yaml:"token"`
	// External issuers whose bearer tokens Berth accepts.
	External []Issuer `yaml:"external"`
}

// AccessRule grants actions (pull, push, overwrite, delete) on the
// repositories matching any of Repositories ("*" matches within one path
// segment, "**" across segments: "apps/**").
type AccessRule struct {
	Repositories []string `yaml:"repositories"`
	// Anonymous: actions anyone may do without credentials.
	Anonymous []string `yaml:"anonymous"`
	// Users: user name → actions; "*" is any authenticated user.
	Users map[string][]string `yaml:"users"`
	// Groups: group name → actions.
	Groups map[string][]string `yaml:"groups"`
}

// Token configures the token endpoint (/auth/token) and the Bearer
// challenge that sends clients to it.
type Token struct {
	// Enabled: challenge with Bearer and issue tokens at /auth/token
	// (otherwise the challenge is Basic).
	Enabled bool `yaml:"enabled"`
	// Realm is the token endpoint's absolute URL as clients reach it;
	// empty: built from each request (scheme and host).
	Realm string `yaml:"realm"`
	// Service is the service name in challenges and the tokens' audience.
	Service string `yaml:"service"`
	// Issuer is the tokens' iss.
	Issuer string `yaml:"issuer"`
	// KeyFile is the PEM private key that signs tokens (EC P-256: ES256,
	// RSA: RS256, Ed25519: EdDSA). Empty: a P-256 key is generated once
	// and kept in storage.dir/auth/token-key.pem.
	KeyFile string `yaml:"key_file"`
	// Expiry is how long an issued token is valid.
	Expiry time.Duration `yaml:"expiry"`
}

// Issuer is an external token issuer. Its tokens' keys are chosen by kid
// among Keys and the keys of JWKSFile only (a token's own jwk, jku, x5u
// or x5c headers are never used), and each key's algorithm is pinned.
// A token grants what its access claim lists, within the access rules
// for its subject unless TrustAccess is set.
type Issuer struct {
	Issuer   string      `yaml:"issuer"`
	Audience string      `yaml:"audience"`
	Keys     []IssuerKey `yaml:"keys"`
	// JWKSFile is a JSON Web Key Set file; each key needs kid and alg.
	JWKSFile string `yaml:"jwks_file"`
	// TrustAccess grants the token's access claim as it is, without
	// intersecting it with the access rules for the token's subject.
	TrustAccess bool `yaml:"trust_access"`
}

// IssuerKey is one public key of an external issuer.
type IssuerKey struct {
	KID           string `yaml:"kid"`
	Alg           string `yaml:"alg"` // RS256, RS384, RS512, PS256, ES256, ES384, EdDSA
	PublicKeyFile string `yaml:"public_key_file"`
}

// Enabled reports whether any authentication or access rule is set.
func (a Auth) Enabled() bool {
	return a.Htpasswd != "" || len(a.Groups) > 0 || len(a.Admins) > 0 || len(a.Access) > 0 ||
		a.Token.Enabled || len(a.External) > 0
}

// Storage configures the embedded stores.
type Storage struct {
	// Dir holds blobs (Dir/blobs, Dir/uploads) and the SQLite metadata
	// (Dir/meta.db), unless S3 and metadata.postgres replace them; it
	// always holds serve's lock and temporary files.
	Dir string `yaml:"dir"`
	// S3, when its endpoint is set, keeps blobs in an S3-compatible
	// bucket (shared by replicas) instead of Dir.
	S3 S3 `yaml:"s3"`
}

// S3 is an S3-compatible blob store.
type S3 struct {
	// Endpoint is the server's URL (https://s3.eu-west-1.amazonaws.com,
	// http://127.0.0.1:9000): its scheme decides TLS.
	Endpoint string `yaml:"endpoint"`
	Region   string `yaml:"region"`
	Bucket   string `yaml:"bucket"`
	// Prefix is put before every key.
	Prefix string `yaml:"prefix"`
	// AccessKey and SecretKey (or the files holding them); both empty:
	// the standard AWS environment variables and shared credentials.
	AccessKey     string `yaml:"access_key"`
	AccessKeyFile string `yaml:"access_key_file"`
	SecretKey     string `yaml:"secret_key"`
	SecretKeyFile string `yaml:"secret_key_file"`
	// PathStyle addresses the bucket in the path (MinIO and most
	// self-hosted stores) instead of the host name.
	PathStyle bool `yaml:"path_style"`
	// Redirect > 0: blob GETs are redirected to presigned URLs valid
	// this long, so clients download from the store; 0 serves them.
	Redirect time.Duration `yaml:"redirect"`
	// PartSize of multipart uploads (at least 5 MiB; 0: 16 MiB); each
	// upload in progress holds up to one part in memory.
	PartSize int64 `yaml:"part_size"`
}

// Metadata chooses the metadata store.
type Metadata struct {
	// Postgres, when its DSN is set, keeps the metadata in PostgreSQL
	// (shared by replicas) instead of SQLite in storage.dir.
	Postgres Postgres `yaml:"postgres"`
}

// Postgres is a PostgreSQL metadata store.
type Postgres struct {
	// DSN is a postgres:// URL or key=value connection string; DSNFile
	// reads it from a file instead (it may hold a password).
	DSN     string `yaml:"dsn"`
	DSNFile string `yaml:"dsn_file"`
	// MaxConns bounds the connection pool (0: 16).
	MaxConns int `yaml:"max_conns"`
}

// Log configures structured logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// Limits are the registry's caps on request sizes and pages.
type Limits struct {
	MaxManifestBytes int64 `yaml:"max_manifest_bytes"`
	MaxBlobBytes     int64 `yaml:"max_blob_bytes"`
	PageMax          int   `yaml:"page_max"`
	// MaxListingBytes caps the body of one page of a listing (tags,
	// catalog, referrers, the Flatpak index, search): a page ends early,
	// with a Link to the next, when it would pass this.
	MaxListingBytes int64 `yaml:"max_listing_bytes"`
	// RateLimit is an optional per-client request rate limit (the client
	// is its user name, else its address): 429 TOOMANYREQUESTS with
	// Retry-After past it.
	RateLimit RateLimit `yaml:"rate_limit"`
	// GCPercent is how far, in per cent of the live heap, the Go heap may
	// grow before the next collection (Go's GOGC, which wins when set in
	// the environment). Lower holds less memory for more collector CPU;
	// the default 50 (Go's is 100) kept the benchmark's peak RSS about
	// 8 MiB lower (docs/performance.md).
	GCPercent int `yaml:"gc_percent"`
	// GCMinHeapBytes is the heap the collector lets grow before a cycle
	// however small the live heap is (0: none, GCPercent alone). A few
	// MiB live at 50% meant a cycle every few milliseconds under load;
	// a floor spares those cycles and changes nothing once the live heap
	// is large (internal/gctune). Ignored when GOGC is set.
	GCMinHeapBytes int64 `yaml:"gc_min_heap_bytes"`
}

// RateLimit is a token bucket per client.
type RateLimit struct {
	// RequestsPerSecond refills the bucket; 0 disables the limit.
	RequestsPerSecond float64 `yaml:"requests_per_second"`
	// Burst is the bucket's size.
	Burst int `yaml:"burst"`
}

// Default returns the configuration used when nothing is set.
func Default() Config {
	return Config{
		HTTP: HTTP{
			Addr:              ":5000",
			ShutdownTimeout:   30 * time.Second,
			ReadHeaderTimeout: 30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
			MinBodyRate:       1024,
			BodyRateWindow:    30 * time.Second,
			WriteStallTimeout: 2 * time.Minute,
			TLS:               TLS{ClientAuth: "none", MinVersion: "1.2"},
		},
		Auth:    Auth{Token: Token{Service: "berth", Issuer: "berth", Expiry: 5 * time.Minute}},
		Storage: Storage{Dir: "./berth-data"},
		Log:     Log{Level: "info", Format: "text"},
		Limits: Limits{
			MaxManifestBytes: 4 << 20,
			MaxBlobBytes:     64 << 30,
			PageMax:          1000,
			MaxListingBytes:  4 << 20,
			RateLimit:        RateLimit{Burst: 100},
			GCPercent:        50,
			GCMinHeapBytes:   16 << 20,
		},
		GC:      GC{Interval: time.Hour, Grace: time.Hour, ClaimLease: 10 * time.Minute},
		Uploads: Uploads{ExpireAfter: 24 * time.Hour, MaxPerRepository: 1000, MaxPerClient: 100, IdleTimeout: 2 * time.Minute},
		Flatpak: Flatpak{Enabled: true, Title: "Berth", RemoteName: "berth", IndexCacheBytes: 64 << 20,
			Deltas: Deltas{Enabled: true, Versions: 3, Window: 30 * 24 * time.Hour, MaxLayerBytes: 1 << 30,
				MaxRatio: 0.5, Concurrency: 1, RetireAfter: 10 * time.Minute}},
		Metrics:       Metrics{Enabled: true, Access: "admin"},
		Notifications: Notifications{Backlog: 100_000},
	}
}

// Load reads the YAML file at path (none if path is empty) over the
// defaults, applies the BERTH_* variables of env (os.Environ form), reads
// the secrets given as files, then validates. Every error is a *KeyError
// (joined with errors.Join) that names its key and where it was set: the
// file's line and column, or the variable. Variables that name no key do
// not fail the load; they come back as Warnings.
func Load(path string, env []string) (Config, Warnings, error) {
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return Default(), Warnings{}, fmt.Errorf("config: %w", err)
		}
	}
	return load(path, data, env)
}

// load is Load on the file's contents (data is ignored when file is "").
func load(file string, data []byte, env []string) (Config, Warnings, error) {
	cfg := Default()
	var root *yaml.Node
	if file != "" {
		root = new(yaml.Node)
		if err := yaml.Unmarshal(data, root); err != nil {
			return cfg, Warnings{}, yamlErrors(file, nil, err)
		}
		if err := Decode(data, &cfg); err != nil {
			return cfg, Warnings{}, yamlErrors(file, root, err)
		}
	}
	fromEnv, warnings, ps := applyEnv(&cfg, env)
	if len(ps) > 0 {
		return cfg, warnings, ps.err()
	}
	ps = append(resolveSecretFiles(&cfg), cfg.validate()...)
	return cfg, warnings, place(ps, file, root, fromEnv).err()
}

// Decode decodes YAML strictly into cfg: unknown keys are errors.
func Decode(data []byte, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// Validate returns every problem, each a *KeyError naming its key path.
// (Load also checks that a secret and its file are not both given, and
// that the file can be read.)
func (c Config) Validate() error { return c.validate().err() }

func (c Config) validate() problems {
	var ps problems
	if c.HTTP.Addr == "" {
		ps.add(path{"http", "addr"}, "required")
	}
	if c.Storage.Dir == "" {
		ps.add(path{"storage", "dir"}, "required")
	}
	if s := c.Storage.S3; s.Endpoint != "" {
		if u, err := url.Parse(s.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			ps.add(path{"storage", "s3", "endpoint"}, "is not an http(s) URL without credentials")
		}
		if s.Bucket == "" {
			ps.add(path{"storage", "s3", "bucket"}, "required with storage.s3.endpoint")
		}
		if s.PartSize != 0 && s.PartSize < 5<<20 {
			ps.add(path{"storage", "s3", "part_size"}, "%d is under S3's minimum part of 5 MiB", s.PartSize)
		}
		if s.Redirect < 0 {
			ps.add(path{"storage", "s3", "redirect"}, "must not be negative")
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		ps.add(path{"log", "level"}, "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		ps.add(path{"log", "format"}, "%q is not one of text, json", c.Log.Format)
	}
	if c.Limits.MaxManifestBytes < 4<<20 {
		ps.add(path{"limits", "max_manifest_bytes"}, "%d is below the 4 MiB the spec requires", c.Limits.MaxManifestBytes)
	}
	if c.Limits.MaxBlobBytes <= 0 {
		ps.add(path{"limits", "max_blob_bytes"}, "must be positive")
	}
	if c.Limits.PageMax <= 0 {
		ps.add(path{"limits", "page_max"}, "must be positive")
	}
	if c.Limits.GCMinHeapBytes < 0 || c.Limits.GCMinHeapBytes > 1<<40 { // gctune.MaxFloor
		ps.add(path{"limits", "gc_min_heap_bytes"}, "%d is not between 0 and 1 TiB", c.Limits.GCMinHeapBytes)
	}
	if c.Limits.GCPercent < 10 {
		ps.add(path{"limits", "gc_percent"}, "%d is below 10 (the collector would run almost without pause)", c.Limits.GCPercent)
	}
	for _, d := range []struct {
		key path
		v   time.Duration
	}{{path{"http", "shutdown_timeout"}, c.HTTP.ShutdownTimeout}, {path{"http", "read_header_timeout"}, c.HTTP.ReadHeaderTimeout},
		{path{"http", "idle_timeout"}, c.HTTP.IdleTimeout}, {path{"uploads", "expire_after"}, c.Uploads.ExpireAfter},
		{path{"http", "write_stall_timeout"}, c.HTTP.WriteStallTimeout},
		{path{"gc", "claim_lease"}, c.GC.ClaimLease}, {path{"uploads", "idle_timeout"}, c.Uploads.IdleTimeout}} {
		if d.v <= 0 {
			ps.add(d.key, "must be positive")
		}
	}
	for _, d := range []struct {
		key path
		v   time.Duration
	}{{path{"gc", "interval"}, c.GC.Interval}, {path{"gc", "grace"}, c.GC.Grace}, {path{"gc", "untagged_after"}, c.GC.UntaggedAfter}} {
		if d.v < 0 {
			ps.add(d.key, "must not be negative")
		}
	}
	if c.HTTP.MaxHeaderBytes < 4096 {
		ps.add(path{"http", "max_header_bytes"}, "%d is below 4096", c.HTTP.MaxHeaderBytes)
	}
	if c.HTTP.MinBodyRate < 0 {
		ps.add(path{"http", "min_body_rate"}, "must not be negative")
	}
	if c.HTTP.MinBodyRate > 0 && c.HTTP.BodyRateWindow <= 0 {
		ps.add(path{"http", "body_rate_window"}, "must be positive when http.min_body_rate is set")
	}
	if c.Limits.MaxListingBytes < 64<<10 {
		ps.add(path{"limits", "max_listing_bytes"}, "%d is below 64 KiB", c.Limits.MaxListingBytes)
	}
	if c.Uploads.MaxPerRepository < 0 {
		ps.add(path{"uploads", "max_per_repository"}, "must not be negative")
	}
	if c.Uploads.MaxPerClient < 0 {
		ps.add(path{"uploads", "max_per_client"}, "must not be negative")
	}
	ps = append(ps, c.HTTP.TLS.validate()...)
	ps = append(ps, c.Auth.validate()...)
	ps = append(ps, c.Flatpak.validate()...)
	switch c.Metrics.Access {
	case "anonymous", "authenticated", "admin":
	default:
		ps.add(path{"metrics", "access"}, "%q is not one of anonymous, authenticated, admin", c.Metrics.Access)
	}
	rl := c.Limits.RateLimit
	if rl.RequestsPerSecond < 0 || math.IsNaN(rl.RequestsPerSecond) || math.IsInf(rl.RequestsPerSecond, 0) {
		ps.add(path{"limits", "rate_limit", "requests_per_second"}, "must be a finite number, not negative (0 disables the limit)")
	}
	if rl.Burst < 0 || (rl.RequestsPerSecond > 0 && rl.Burst < 1) {
		ps.add(path{"limits", "rate_limit", "burst"}, "must be at least 1 when the limit is on (requests_per_second > 0)")
	}
	if c.Notifications.Backlog < 1 {
		ps.add(path{"notifications", "backlog"}, "must be at least 1")
	}
	names := map[string]bool{}
	for i, e := range c.Notifications.Endpoints {
		key := path{"notifications", "endpoints", i}
		if e.Name != "" && names[e.Name] {
			// The name keys the endpoint's delivery cursor.
			ps.add(key.with("name"), "duplicate endpoint name %q", e.Name)
		}
		names[e.Name] = true
		u, err := url.Parse(e.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			// The URL is not quoted: it may carry credentials.
			ps.add(key.with("url"), "not an absolute http(s) URL without credentials")
		}
		if e.Name == "" {
			ps.add(key.with("name"), "required")
		}
		for j, ev := range e.Events {
			switch ev {
			case "manifest.push", "tag.update", "manifest.delete", "tag.delete", "blob.delete", "gc.run":
			default:
				ps.add(key.with("events", j), "%q is not one of manifest.push, tag.update, manifest.delete, tag.delete, blob.delete, gc.run", ev)
			}
		}
		for j, p := range e.Repositories {
			if err := ValidatePattern(p); err != nil {
				ps.addErr(key.with("repositories", j), err)
			}
		}
		if e.Timeout < 0 {
			ps.add(key.with("timeout"), "must not be negative")
		}
	}
	return ps
}

func (f Flatpak) validate() problems {
	var ps problems
	if f.PublicURL != "" {
		u, err := url.Parse(f.PublicURL)
		switch {
		case err != nil:
			ps.addErr(path{"flatpak", "public_url"}, err)
		case u.Scheme != "http" && u.Scheme != "https", u.Host == "", u.RawQuery != "", u.Fragment != "", u.User != nil:
			ps.add(path{"flatpak", "public_url"}, "%q is not an absolute http(s) URL without query, fragment or credentials", f.PublicURL)
		}
	}
	if f.Title == "" || strings.ContainsAny(f.Title, "\r\n") {
		ps.add(path{"flatpak", "title"}, "required, on one line")
	}
	if f.RemoteName == "" || strings.Trim(f.RemoteName, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" {
		ps.add(path{"flatpak", "remote_name"}, "%q must be letters, digits, '.', '_' or '-'", f.RemoteName)
	}
	if f.IndexCacheBytes < 0 {
		ps.add(path{"flatpak", "index_cache_bytes"}, "must not be negative")
	}
	d := f.Deltas
	if d.Versions < 1 {
		ps.add(path{"flatpak", "deltas", "versions"}, "must be at least 1")
	}
	if d.Window < 0 {
		ps.add(path{"flatpak", "deltas", "window"}, "must not be negative")
	}
	if d.MaxLayerBytes <= 0 {
		ps.add(path{"flatpak", "deltas", "max_layer_bytes"}, "must be positive")
	}
	if !(d.MaxRatio > 0 && d.MaxRatio <= 1) {
		ps.add(path{"flatpak", "deltas", "max_ratio"}, "%v is not in (0, 1]", d.MaxRatio)
	}
	if d.Concurrency < 1 || d.Concurrency > 64 {
		ps.add(path{"flatpak", "deltas", "concurrency"}, "must be 1 to 64")
	}
	if d.RetireAfter < 0 {
		ps.add(path{"flatpak", "deltas", "retire_after"}, "must not be negative")
	}
	return ps
}
