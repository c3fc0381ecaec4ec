// Package delta makes Flatpak delta updates: when a new image of a Flatpak
// ref is pushed under a tag, it makes tar-diff deltas from earlier images
// of the same ref to the new one, verifies each, and publishes them the
// way the flatpak client (1.7.3 and later) looks for them (see
// ../shared/docs/flatpak-deltas.md):
//
//   - each delta is a blob (media type application/vnd.tar-diff) linked in
//     the image's repository;
//   - each target image T gets one delta manifest: an OCI image manifest
//     whose config is the empty JSON object with media type
//     application/vnd.redhat.delta.config.v1+json, annotated
//     io.github.containers.delta.target=T, with one layer per source
//     image S annotated io.github.containers.delta.from (S's DiffID) and
//     .to (T's DiffID);
//   - the repository's tag _deltaindex is an OCI image index listing every
//     live delta manifest, each entry annotated with its target.
//
// All of these are ordinary content: pullable, listed in the registry's
// tags, referenced the usual way, so garbage collection keeps a delta
// blob exactly while a delta manifest references it and a delta manifest
// while _deltaindex does. The catalogue and search leave them out.
//
// # Jobs
//
// The work lives in the metadata store, not in memory (meta's delta
// tables): a target is planned once (its pending pairs written in one
// transaction), and each pair is claimed with a lease that the worker
// renews while it works; a worker that dies leaves a lease that ends, and
// the pair is claimed again, so a job survives a restart. Nothing is on a
// push's request path: the worker finds new targets by querying the
// manifests (tagged images with the org.flatpak.ref label and no plan),
// woken by a signal after each push and by a periodic poll.
//
// # Verification
//
// The client has no fallback: a delta that does not rebuild the layer
// exactly makes `flatpak update` fail. So every delta is applied, before
// it is published, to the source layer's bytes, and the result must hash
// to the target's DiffID; the source and target layers are checked
// against their own DiffIDs on the way. A delta that fails is recorded as
// failed and never published (the client then downloads the whole layer);
// one that is not substantially smaller than the layer (Options.MaxRatio)
// is recorded as rejected.
//
// # Consistency
//
// Publishing is idempotent and converges: a repository's delta manifests
// and _deltaindex are recomputed from its ready pairs whose target and
// source still exist. Pairs whose target or source was deleted (by a
// client or by gc) are dropped at the next cycle, which runs after every
// manifest delete and gc run. A delta manifest that stops being listed is
// retired and deleted only after Options.RetireAfter, so a client that
// read the previous _deltaindex still finds what it lists.
package delta
