package meta

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// IndexFilter narrows the Flatpak registry index (IndexImages): values
// of one field are alternatives, different fields must all hold, and a
// field with no values is no condition. Conditions other than
// Repositories and Tags apply to the image, never to the index listing it.
type IndexFilter struct {
	Repositories  []string // the manifest's repository
	Tags          []string // a tag that makes it listed (its own, or its index's)
	OS            []string // the image's, from its config
	Architectures []string
	// Maps are the label and annotation conditions, sorted (equal filters
	// are equal values).
	Maps []MapCondition
	// None: the query named a key with no values, which nothing matches.
	None bool
}

// IndexScope says which changes can alter the answers to a filter: a
// backend keeps a generation per scope (see metatest.IndexStore).
type IndexScope int

const (
	// ScopeAll: any change to manifests, tags or icons.
	ScopeAll IndexScope = iota
	// ScopeFlatpak: changes that can alter an answer restricted to images
	// with the FlatpakRefLabel label; writes of image manifests without it,
	// and of their tags, are not among them.
	ScopeFlatpak
)

// Scope is the scope of the filter's answers: ScopeFlatpak when it
// requires the FlatpakRefLabel config label (present, or with given
// values), as every flatpak client's query does; else ScopeAll.
func (f IndexFilter) Scope() IndexScope {
	for _, c := range f.Maps {
		if !c.Annotation && c.Key == FlatpakRefLabel {
			return ScopeFlatpak
		}
	}
	return ScopeAll
}

// MapCondition is one condition on an image's config labels or manifest
// annotations: Key has one of Values, or with Exists, is present.
type MapCondition struct {
	Annotation bool // false: a config label
	Key        string
	Exists     bool
	Values     []string
}

// ParseIndexFilter reads the registry index protocol's query keys into a
// filter: repository, tag, os, architecture, label:K, label:K:exists,
// annotation:K and annotation:K:exists (the values of an :exists key are
// ignored). Any other key, or a label or annotation key with no name, is
// an error. It is the protocol's grammar in one place; backends get the
// typed filter.
func ParseIndexFilter(query map[string][]string) (IndexFilter, error) {
	var f IndexFilter
	for k, vals := range query {
		if len(vals) == 0 {
			f.None = true
		}
		switch k {
		case "repository":
			f.Repositories = vals
		case "tag":
			f.Tags = vals
		case "os":
			f.OS = vals
		case "architecture":
			f.Architectures = vals
		default:
			kind, rest, _ := strings.Cut(k, ":")
			c := MapCondition{Key: rest, Values: vals}
			switch kind {
			case "label":
			case "annotation":
				c.Annotation = true
			default:
				return IndexFilter{}, fmt.Errorf("unknown index filter key %q", k)
			}
			if key, ok := strings.CutSuffix(rest, ":exists"); ok {
				c.Key, c.Exists, c.Values = key, true, nil
			}
			if c.Key == "" {
				return IndexFilter{}, fmt.Errorf("index filter key %q names no %s", k, kind)
			}
			f.Maps = append(f.Maps, c)
		}
	}
	slices.SortFunc(f.Maps, func(a, b MapCondition) int {
		return cmp.Or(compareBool(a.Annotation, b.Annotation), cmp.Compare(a.Key, b.Key), compareBool(a.Exists, b.Exists))
	})
	return f, nil
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}
