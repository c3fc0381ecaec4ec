// Package flatpak makes Berth a Flatpak remote, and reads what a Flatpak
// image says about itself.
//
// Serving (Handler, wired by package server with Handler.Register):
//
//	GET /index/static, /index/dynamic    the registry index the flatpak client reads
//	                                     (../shared/docs/flatpak-oci-protocol.md §3–4)
//	GET /icons/<sha256 hex>.png          icons decoded at push time, cached forever
//	GET /berth.flatpakrepo               `flatpak remote-add --from` file (RepoFilePath)
//	GET /flatpakref/<repo>/<tag>.flatpakref  `flatpak install --from` file (FlatpakrefPath)
//
// The index is answered from what the metadata store recorded at push time
// (config labels, annotations, platform, tags, icons), in one snapshot:
// nothing here reads blobs. Only the labels and annotations the protocol
// defines are listed (org.flatpak.*, org.freedesktop.appstream.*,
// io.github.containers.DeltaUrl), and an image listing more than
// MaxIndexImageBytes of them is left out with a warning. The answer does
// not depend on the request: without Options.PublicURL the Registry field
// and icon URLs are relative to the index URL ("/", "/icons/…"), which the
// client resolves (flatpak-oci-protocol.md §1, §2.3). Its strong ETag is a
// fingerprint of the body (the gzipped body has its own, "-gz"); the
// store's index generation (a counter bumped in the same transaction as
// every change to manifests, tags or manifest icons) only says whether a
// cached answer is still valid. Answers are cached gzipped in memory per
// normalized query, so a repeated query costs one generation lookup; a
// miss is built once per (query, generation), by at most GOMAXPROCS builds
// at a time, and a client going away does not cancel it. Icon labels that
// are data: URIs become /icons/ URLs (the client fetches either, §2.3),
// which keeps the answer small; http(s) URLs are passed on as they are.
//
// The .flatpakrepo and .flatpakref files need absolute URLs: they are
// built on BaseURL (PublicURL, else the request's scheme and host, from
// X-Forwarded-Proto/-Host when Options.TrustForwardedHeaders), which the
// web catalogue's commands use too.
//
// Push time (IconRecorder, a registry.ManifestObserver, wired whether the
// remote is served or not): the AppStream icon labels' data: URIs are
// checked (size, PNG only, dimensions read from the header before any pixel
// is decoded) and each good icon is stored once by digest; a bad one is
// skipped with a warning and never fails the push. IconRecorder.Backfill
// records, at start, the icons of manifests stored while nothing did.
//
// Reading (for the web catalogue): ParseMetadata reads org.flatpak.metadata
// (runtime, sdk, permissions), ParseAppstream the AppStream metainfo, Rate
// and Describe put the permissions in plain words with a safety level.
// Both parsers refuse labels over MaxMetadataBytes / MaxAppstreamBytes
// unread and cap their lists, so a pushed label costs bounded work.
//
// Byte-for-byte rule (security lesson V25): the org.flatpak.metadata label
// is copied into the index unchanged; an image whose metadata holds a NUL,
// invalid UTF-8 or U+FFFD (what a JSON decoder substitutes for invalid
// UTF-8, so the recorded label may no longer match the config's bytes) is
// left out of the index with a logged warning.
//
// The package owns no storage: it declares the narrow Meta and IconStore
// interfaces it needs (the contract is meta/metatest.IndexStore). It does
// not serve /v2/ (package registry does) and does not authenticate: the
// index, icons and files are anonymous, as the flatpak client fetches the
// index and icons without credentials.
package flatpak
