// Package config owns Berth's configuration: the typed YAML file, the
// defaults, the BERTH_* environment overrides and validation. It knows
// nothing of the components it configures.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole configuration. Every key has a default, so an empty
// file (or none) is valid.
type Config struct {
	HTTP       HTTP       `yaml:"http"`
	Storage    Storage    `yaml:"storage"`
	Log        Log        `yaml:"log"`
	Limits     Limits     `yaml:"limits"`
	Validation Validation `yaml:"validation"`
	GC         GC         `yaml:"gc"`
	Uploads    Uploads    `yaml:"uploads"`
	Flatpak    Flatpak    `yaml:"flatpak"`
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
}

// Uploads configures upload sessions.
type Uploads struct {
	// ExpireAfter deletes sessions (and their data) idle for this long.
	ExpireAfter time.Duration `yaml:"expire_after"`
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
}

// Storage configures the embedded stores.
type Storage struct {
	// Dir holds blobs (Dir/blobs, Dir/uploads) and the SQLite metadata
	// (Dir/meta.db).
	Dir string `yaml:"dir"`
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
}

// Default returns the configuration used when nothing is set.
func Default() Config {
	return Config{
		HTTP: HTTP{
			Addr:              ":5000",
			ShutdownTimeout:   30 * time.Second,
			ReadHeaderTimeout: 30 * time.Second,
			IdleTimeout:       2 * time.Minute,
		},
		Storage: Storage{Dir: "./berth-data"},
		Log:     Log{Level: "info", Format: "text"},
		Limits: Limits{
			MaxManifestBytes: 4 << 20,
			MaxBlobBytes:     64 << 30,
			PageMax:          1000,
		},
		GC:      GC{Interval: time.Hour, Grace: time.Hour},
		Uploads: Uploads{ExpireAfter: 24 * time.Hour},
		Flatpak: Flatpak{Enabled: true, Title: "Berth", RemoteName: "berth", IndexCacheBytes: 64 << 20},
	}
}

// Load reads the YAML file at path (none if path is empty) over the
// defaults, then applies the BERTH_* variables of env (os.Environ form),
// then validates.
func Load(path string, env []string) (Config, error) {
	cfg := Default()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		if err := Decode(data, &cfg); err != nil {
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := applyEnv(&cfg, env); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
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

// Validate returns every problem, each with its key path.
func (c Config) Validate() error {
	var errs []error
	if c.HTTP.Addr == "" {
		errs = append(errs, errors.New("http.addr: required"))
	}
	if c.Storage.Dir == "" {
		errs = append(errs, errors.New("storage.dir: required"))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level: %q is not one of debug, info, warn, error", c.Log.Level))
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log.format: %q is not one of text, json", c.Log.Format))
	}
	if c.Limits.MaxManifestBytes < 4<<20 {
		errs = append(errs, fmt.Errorf("limits.max_manifest_bytes: %d is below the 4 MiB the spec requires", c.Limits.MaxManifestBytes))
	}
	if c.Limits.MaxBlobBytes <= 0 {
		errs = append(errs, errors.New("limits.max_blob_bytes: must be positive"))
	}
	if c.Limits.PageMax <= 0 {
		errs = append(errs, errors.New("limits.page_max: must be positive"))
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"http.shutdown_timeout", c.HTTP.ShutdownTimeout}, {"http.read_header_timeout", c.HTTP.ReadHeaderTimeout}, {"http.idle_timeout", c.HTTP.IdleTimeout}, {"uploads.expire_after", c.Uploads.ExpireAfter}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s: must be positive", d.key))
		}
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"gc.interval", c.GC.Interval}, {"gc.grace", c.GC.Grace}, {"gc.untagged_after", c.GC.UntaggedAfter}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s: must not be negative", d.key))
		}
	}
	errs = append(errs, c.Flatpak.validate()...)
	return errors.Join(errs...)
}

func (f Flatpak) validate() []error {
	var errs []error
	if f.PublicURL != "" {
		u, err := url.Parse(f.PublicURL)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("flatpak.public_url: %v", err))
		case u.Scheme != "http" && u.Scheme != "https", u.Host == "", u.RawQuery != "", u.Fragment != "", u.User != nil:
			errs = append(errs, fmt.Errorf("flatpak.public_url: %q is not an absolute http(s) URL without query, fragment or credentials", f.PublicURL))
		}
	}
	if f.Title == "" || strings.ContainsAny(f.Title, "\r\n") {
		errs = append(errs, errors.New("flatpak.title: required, on one line"))
	}
	if f.RemoteName == "" || strings.Trim(f.RemoteName, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" {
		errs = append(errs, fmt.Errorf("flatpak.remote_name: %q must be letters, digits, '.', '_' or '-'", f.RemoteName))
	}
	if f.IndexCacheBytes < 0 {
		errs = append(errs, errors.New("flatpak.index_cache_bytes: must not be negative"))
	}
	return errs
}

// applyEnv sets every field whose variable BERTH_<SECTION>_<KEY> (the yaml
// keys, upper-cased) is present in env.
func applyEnv(cfg *Config, env []string) error {
	vars := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "BERTH_") {
			vars[k] = v
		}
	}
	if len(vars) == 0 {
		return nil
	}
	var errs []error
	walk(reflect.ValueOf(cfg).Elem(), "BERTH", "", func(name, path string, f reflect.Value) {
		s, ok := vars[name]
		if !ok {
			return
		}
		delete(vars, name)
		if err := setField(f, s); err != nil {
			errs = append(errs, fmt.Errorf("%s (%s): %w", name, path, err))
		}
	})
	for k := range vars {
		switch k {
		case "BERTH_E2E", "BERTH_TEST_POSTGRES_DSN", "BERTH_TEST_S3_ENDPOINT":
			continue // test switches, not configuration
		}
		errs = append(errs, fmt.Errorf("%s: no such configuration key", k))
	}
	return errors.Join(errs...)
}

func walk(v reflect.Value, env, path string, fn func(env, path string, f reflect.Value)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		key := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		e, p := env+"_"+strings.ToUpper(key), key
		if path != "" {
			p = path + "." + key
		}
		if f := v.Field(i); f.Kind() == reflect.Struct {
			walk(f, e, p, fn)
		} else {
			fn(e, p, f)
		}
	}
}

func setField(f reflect.Value, s string) error {
	switch f.Interface().(type) {
	case time.Duration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		f.SetInt(int64(d))
	case string:
		f.SetString(s)
	case int, int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return err
		}
		f.SetInt(n)
	case bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		f.SetBool(b)
	default:
		return fmt.Errorf("unsupported type %s", f.Type())
	}
	return nil
}
