package config

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// EnvPrefix starts every environment override: BERTH_<SECTION>_<KEY>, the
// YAML keys upper-cased and joined by '_' (BERTH_HTTP_TLS_CERT_FILE).
const EnvPrefix = "BERTH_"

// Warnings are what Load found that does not stop Berth.
type Warnings struct {
	// UnknownEnv are the BERTH_* variables that name no configuration
	// key, sorted. Kubernetes sets BERTH_PORT, BERTH_SERVICE_HOST,
	// BERTH_PORT_5000_TCP… in every pod of a namespace that has a Service
	// named berth, so these are ignored, not refused.
	UnknownEnv []string
	// suggest maps an unknown variable to a known one a letter or two
	// away (a likely typo).
	suggest map[string]string
}

// Messages are the warnings as lines for a person (names only: a
// variable's value may be a secret).
func (w Warnings) Messages() []string {
	var out []string
	for _, k := range w.UnknownEnv {
		m := k + ": not a configuration key, ignored"
		if s := w.suggest[k]; s != "" {
			m += " (did you mean " + s + "?)"
		}
		out = append(out, m)
	}
	return out
}

// applyEnv sets every field whose variable BERTH_<SECTION>_<KEY> is in env
// (os.Environ form). It returns the key paths the environment set (path →
// variable), the variables that name no key, and the problems with values
// that do not parse.
func applyEnv(cfg *Config, env []string) (map[string]string, Warnings, problems) {
	vars := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, EnvPrefix) {
			vars[k] = v
		}
	}
	set := map[string]string{}
	var ps problems
	var known []string
	walkEnv(reflect.ValueOf(cfg).Elem(), "BERTH", nil, func(name string, p path, f reflect.Value) {
		known = append(known, name)
		s, ok := vars[name]
		if !ok {
			return
		}
		delete(vars, name)
		set[p.String()] = name
		if err := setField(f, s); err != nil {
			ps = append(ps, &KeyError{Key: p.String(), path: p, Env: name, Err: err})
		}
	})
	w := Warnings{suggest: map[string]string{}}
	for k := range vars {
		w.UnknownEnv = append(w.UnknownEnv, k)
		for _, kn := range known {
			if editDistance(k, kn, 2) <= 2 {
				w.suggest[k] = kn
				break
			}
		}
	}
	sort.Strings(w.UnknownEnv)
	return set, w, ps
}

// walkEnv calls fn for every key that is not a section: the leaves of the
// struct tree (lists and maps included, which the environment cannot set).
func walkEnv(v reflect.Value, env string, p path, fn func(env string, p path, f reflect.Value)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		key := yamlKey(t.Field(i))
		if key == "" {
			continue
		}
		e, fp := env+"_"+strings.ToUpper(key), p.with(key)
		if f := v.Field(i); f.Kind() == reflect.Struct && f.Type() != reflect.TypeOf(time.Duration(0)) {
			walkEnv(f, e, fp, fn)
		} else {
			fn(e, fp, f)
		}
	}
}

// yamlKey is a struct field's YAML key ("" for fields YAML skips).
func yamlKey(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	key := strings.Split(f.Tag.Get("yaml"), ",")[0]
	if key == "-" {
		return ""
	}
	if key == "" {
		key = strings.ToLower(f.Name)
	}
	return key
}

// setField parses s into f: durations as Go durations (30s, 5m, 1h30m),
// lists comma-separated.
func setField(f reflect.Value, s string) error {
	switch f.Interface().(type) {
	case time.Duration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration (like 30s, 5m or 1h30m)", s)
		}
		f.SetInt(int64(d))
	case string:
		f.SetString(s)
	case float64:
		x, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", s)
		}
		f.SetFloat(x)
	case int, int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not an integer", s)
		}
		f.SetInt(n)
	case []string:
		var list []string
		for _, e := range strings.Split(s, ",") {
			if e = strings.TrimSpace(e); e != "" {
				list = append(list, e)
			}
		}
		f.Set(reflect.ValueOf(list))
	case bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not a boolean (true or false)", s)
		}
		f.SetBool(b)
	default:
		return errors.New("cannot be set from the environment; set it in the configuration file")
	}
	return nil
}

// editDistance is the Levenshtein distance of a and b, or max+1 once it
// is known to pass max.
func editDistance(a, b string, max int) int {
	if d := len(a) - len(b); d > max || -d > max {
		return max + 1
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		low := cur[0]
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
			low = min(low, cur[j])
		}
		if low > max {
			return max + 1
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
