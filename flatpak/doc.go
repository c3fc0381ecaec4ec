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
// MaxIndexImageBytes of them is left out with a warning, as is an image
// whose org.flatpak.ref (label, or annotation for flatpak <= 1.4) is not a
// ref flatpak accepts (ParseRef: ValidName, ValidArch, ValidBranch, the
// rules of flatpak's flatpak-ref-utils.c) or differs between the two. An
// image without org.flatpak.ref is not a Flatpak image; it is listed as
// the protocol lists any image (the flatpak client asks for
// label:org.flatpak.ref:exists and never sees it). Without
// Options.PublicURL the Registry field and icon URLs are relative to the
// index URL ("/", "/icons/…"), which the client resolves
// (flatpak-oci-protocol.md §1, §2.3). Its strong ETag is a fingerprint of
// the body (the gzipped body has its own, "-gz"); the store's index
// generation of the query's scope (a counter bumped in the same
// transaction as every change to manifests, tags or manifest icons that
// can alter answers of that scope; meta.IndexFilter.Scope) only says
// whether a cached answer is still valid.
//
// Access (V14): with Options.Access, the index lists only images of
// repositories the requester may pull, an icon is served only if a
// repository the requester may pull shows it (otherwise 404, exactly as
// an unknown icon; and served as private, so no shared cache hands it to
// another client), and a .flatpakref of a repository the requester may
// not pull is the 404 of a missing one. The .flatpakrepo file holds no
// repository data and is always served. An answer depends only on the
// query and the requester's view (Access.View's key): answers are cached
// gzipped in memory per (view key, normalized query), so an anonymous
// requester is never served an answer built for an admin, and a repeated
// query costs one generation lookup; a miss is built once per (key,
// generation), by at most GOMAXPROCS builds at a time, and a client going
// away does not cancel it. The cache's budget (Options.CacheBytes) counts
// each entry's key and bookkeeping with its answer, and it holds at most
// 4096 answers, so a flood of distinct filters cannot grow it past the
// budget. Icon labels that are data: URIs become /icons/ URLs (the client
// fetches either, §2.3), which keeps the answer small; http(s) URLs are
// passed on as they are.
//
// Size cap: an answer's JSON is at most Options.MaxIndexBytes (default 4
// MiB). The protocol has no paging, and an error status would leave the
// flatpak client with no remote at all, so an answer that would be larger
// lists the first images that fit, in the order the store walks them
// (tagged images by repository and digest, then the images of tagged
// indexes), carries the header X-Berth-Index-Truncated: true, and is
// logged as a warning once per index generation. A normal registry never
// comes near the cap: the flatpak client's own query (tag, architecture,
// label:org.flatpak.ref:exists) lists one image per app. Each image is
// encoded as the store passes it, and the walk stops at the cap, so a
// build holds at most the cap's worth of encoded JSON (grouped by
// repository) and then writes it, part by part, into the gzip stream
// that is cached; memory stays flat under concurrent hostile queries.
//
// The .flatpakrepo and .flatpakref files need absolute URLs: they are
// built on BaseURL (PublicURL, else the request's scheme and host, from
// X-Forwarded-Proto/-Host when Options.TrustForwardedHeaders), which the
// web catalogue's commands use too. They carry only http(s) URLs (a
// javascript:, file: or relative Homepage, Icon or Url is left out; a
// RuntimeRepo label that is not http(s) is replaced by this remote's
// .flatpakrepo), and no value holds a line break, a control character or
// a bidirectional override: a line break would start a new key.
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
// interfaces it needs (the contracts are meta/metatest.IndexStore and
// IconAccessStore). It does not serve /v2/ (package registry does) and does
// not authenticate: Options.Access, given by the server, says what a
// request may see; the flatpak client fetches the index and icons without
// credentials, so a public remote is an anonymous pull policy.
package flatpak
