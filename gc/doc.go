// Package gc is Berth's online garbage collector: it deletes untagged
// manifests past their retention, blob links no manifest needs, blobs no
// repository links, orphan blob files, and expired upload sessions, while
// pushes and pulls go on. It owns the policy and the order of deletion; the
// metadata store owns the transactions that make each deletion safe, and
// the blob store owns the bytes. gc never touches files or SQL itself.
//
// # Closing the race with pushes
//
// The metadata store serialises every deletion against LinkBlob and
// PutManifest: each sweep re-checks its condition in the transaction that
// deletes, so a concurrent push is ordered wholly before it (and keeps the
// thing) or wholly after it (and sees it gone):
//
//   - a manifest goes only if, in the deleting transaction, no tag and no
//     index of its repository points at it and the retention rule holds;
//   - a link goes only if, in the deleting statement, no manifest of its
//     repository references the blob and it is older than the grace
//     period; PutManifest checks links in its own transaction, so a stored
//     manifest's blobs are always linked;
//   - a blob's bytes go only while its row is a tombstone held by the run
//     deleting them. ClaimBlobs turns a row into a tombstone only if, in
//     that transaction, the blob has no link and no reference and its row
//     is older than the grace period (or puts a tombstone in place for an
//     orphan file with no row). LinkBlob refuses a tombstone with
//     meta.ErrBlobDeleting. gc then deletes the bytes and drops the
//     tombstones (DropBlobs).
//
// Each of these deleting transactions handles a batch (up to 500 rows),
// re-checking every row's condition in its statements, so a push waits
// behind at most one short transaction and gc pays one database sync per
// batch rather than per row.
//
// The registry's half: after committing bytes it links them and then Stats
// them (registry.linkCommitted). A link made before the claim prevents it;
// one tried during the deletion is refused and retried; one made after the
// tombstone is dropped is followed by a Stat that sees whether the bytes
// this push relied on were the ones deleted, and then the push fails (503,
// upload again) instead of being acknowledged. So an acknowledged blob is
// linked with its bytes present, and stays so until its link is swept,
// which cannot happen while a manifest references it.
//
// Grace periods are what keep gc from racing with pushes in progress (a
// blob uploaded but whose manifest is not pushed yet): links and rows
// younger than Policy.Grace are not swept, and the blob store refreshes an
// existing file's time when an upload commits the same bytes, so an orphan
// file being reused is young again. With a zero grace period everything is
// still consistent, but a client may have to upload a blob again.
//
// # Runs at once, and crashes
//
// berth serve collects every gc.interval, and `berth gc` and `berth fsck
// --repair` may run beside it (or another replica's collector, on a shared
// PostgreSQL). So claims are exclusive (meta.Claim): a tombstone carries
// the random token of the run that claimed it and the end of its lease
// (gc.Policy.ClaimLease, 10 minutes by default). ClaimBlobs returns to a
// run only the tombstones it holds, and DropBlobs drops only those. Were a
// run handed another's tombstone, it could delete the bytes and drop the
// row, a client could push the blob again and be acknowledged, and the
// first run, resuming, would delete the fresh bytes.
//
// A crash (or a blob file that fails to delete, counted in Report.Failed)
// leaves tombstones that refuse pushes of their blobs. Once their lease has
// ended any run takes them over, atomically in the statement that claims
// them, and finishes the deletion: berth serve calls FinishTombstones
// before it serves, and RunEvery calls it again when a lease it saw ends.
// The holder, for its part, deletes bytes only in the first half of its
// lease (by its own clock, counted from before the claim), so a take-over
// never meets a holder still deleting, provided half the lease exceeds the
// longest a single Delete takes plus the clock skew between collectors.
//
// One failure does not stop a run: a blob file that cannot be deleted is
// logged and counted and keeps its tombstone, and a phase that fails does
// not keep the later ones (orphan files, upload expiry) from running; Run
// returns all the errors joined.
//
// # Uploads
//
// An upload session's row is updated when a request on it finishes, so a
// PATCH streaming for longer than Policy.UploadExpireAfter, or one that
// has just resumed an old session, has an old row. But an active PATCH
// keeps its upload data file's modification time fresh: gc expires a
// session only if its data, too, was last written before the cut (it reads
// the times with Blobs.WalkUploads after listing the idle sessions). A
// request resuming a long-idle session in the moment between that walk and
// the expiry can still lose it, and the client starts the upload again.
package gc
