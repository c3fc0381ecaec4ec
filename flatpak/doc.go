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
// (config labels, annotations, platform, tags): nothing here reads blobs.
// Each answer carries a strong ETag derived from the store's index
// generation (a counter the store bumps in the same transaction as every
// change to manifests, tags or manifest icons), the client's base URL and
// the normalized query; it is cached gzipped in memory, so a repeated query
// costs one generation lookup. Icon labels in the index are absolute
// /icons/ URLs rather than data: URIs (the client fetches either, §2.3),
// which keeps the answer small.
//
// Push time (IconRecorder, a registry.ManifestObserver): the AppStream
// icon labels' data: URIs are checked (size, PNG only, dimensions read from
// the header before any pixel is decoded) and each good icon is stored once
// by digest; a bad one is skipped with a warning and never fails the push.
//
// Reading (for the web catalogue): ParseMetadata reads org.flatpak.metadata
// (runtime, sdk, permissions), ParseAppstream the AppStream metainfo, Rate
// and Describe put the permissions in plain words with a safety level.
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
