package meta

import (
	"time"

	"github.com/opencontainers/go-digest"
)

// The types below are what the web catalogue and search read through the
// narrow interface they declare (web.Catalog). Every backend implements
// those methods and passes meta/metatest's RunCatalog contract.

// FlatpakRefLabel is the config label naming a Flatpak ref
// ("app/ID/ARCH/BRANCH" or "runtime/…"); catalogue listings carry it so an
// app is recognised without reading every label.
const FlatpakRefLabel = "org.flatpak.ref"

// TagKey names one tag; the cursor of catalogue tag listings, ordered by
// (Repo, Tag) in byte order.
type TagKey struct {
	Repo string
	Tag  string
}

// CatalogTag is one tag with the facts of the manifest it points at.
type CatalogTag struct {
	TagKey
	Digest       digest.Digest
	MediaType    string
	ArtifactType string
	OS           string
	Architecture string
	Variant      string
	TotalSize    int64
	Created      time.Time // the config's created; zero if none
	Pushed       time.Time // when the manifest was first stored
	Updated      time.Time // when the tag was last pointed
	// FlatpakRef is the manifest's FlatpakRefLabel, empty if none.
	FlatpakRef string
}

// ChildKey names one child descriptor of an index: the Ord'th (from 0) of
// index Index in Repo. It is the cursor of catalogue child listings, ordered
// by (Repo, Index, Ord).
type ChildKey struct {
	Repo  string
	Index digest.Digest
	Ord   int
}

// CatalogChild is one child descriptor of a tagged index, with the facts of
// the child manifest when it is stored in the same repository.
type CatalogChild struct {
	ChildKey
	// The descriptor, as the index lists it.
	Digest    digest.Digest
	MediaType string
	Size      int64
	Platform  string // "os/arch[/variant]", empty if none
	// Stored says the child manifest is in the repository; the fields
	// below are zero when it is not (a sparse index).
	Stored       bool
	OS           string
	Architecture string
	Variant      string
	TotalSize    int64
	FlatpakRef   string
}
