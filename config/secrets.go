package config

import (
	"errors"
	"os"
	"reflect"
	"strings"
)

// A secret can be written in the configuration (or its BERTH_* variable)
// or read from a file: every string key K that has a sibling string key
// K_file is such a secret (notifications.endpoints[].secret and
// secret_file; later ones, like a storage secret_key or a database dsn,
// only need the pair of fields). Load reads the file into K, so the
// components see one value wherever it came from; K_file keeps its path.
// Keys that are paths by nature (auth.htpasswd, auth.token.key_file,
// http.tls.key_file) are read by their component, which re-reads them
// when they change.

// fileSuffix marks the key that holds a secret's file path.
const fileSuffix = "_file"

// resolveSecretFiles reads every secret given as a file into its key.
// The errors name the key and the file, never the secret.
func resolveSecretFiles(cfg *Config) problems {
	var ps problems
	resolveIn(reflect.ValueOf(cfg).Elem(), nil, &ps)
	return ps
}

func resolveIn(v reflect.Value, p path, ps *problems) {
	switch v.Kind() {
	case reflect.Struct:
		resolveStruct(v, p, ps)
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			resolveIn(v.Index(i), p.with(i), ps)
		}
	case reflect.Map:
		// Maps of structs would need copying out and back; the
		// configuration has none (its maps hold names and actions).
	}
}

func resolveStruct(v reflect.Value, p path, ps *problems) {
	t := v.Type()
	fields := map[string]reflect.Value{}
	for i := 0; i < t.NumField(); i++ {
		if key := yamlKey(t.Field(i)); key != "" {
			fields[key] = v.Field(i)
		}
	}
	for key, f := range fields {
		if f.Kind() != reflect.String || !strings.HasSuffix(key, fileSuffix) {
			resolveIn(f, p.with(key), ps)
			continue
		}
		secretKey := strings.TrimSuffix(key, fileSuffix)
		secret, ok := fields[secretKey]
		if !ok || secret.Kind() != reflect.String || f.String() == "" {
			continue // a plain path (a certificate, a key file), or unset
		}
		if secret.String() != "" {
			ps.add(p.with(key), "%s and %s are exclusive: give the secret or the file that holds it", secretKey, key)
			continue
		}
		s, err := readSecretFile(f.String())
		if err != nil {
			ps.addErr(p.with(key), err)
			continue
		}
		secret.SetString(s)
	}
}

// readSecretFile reads a secret from path without its one trailing
// newline (what `echo secret > file` and Kubernetes secrets often add).
func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		// The *PathError names the file and the reason, not the content.
		return "", err
	}
	s := strings.TrimSuffix(string(b), "\n")
	s = strings.TrimSuffix(s, "\r")
	if s == "" {
		return "", errors.New(path + ": the file is empty")
	}
	return s, nil
}
