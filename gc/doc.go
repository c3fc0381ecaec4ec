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
//   - a blob's bytes go only while its row is a tombstone. ClaimBlobs turns
//     a row into a tombstone only if, in that transaction, the blob has no
//     link and no reference and its row is older than the grace period (or
//     puts a tombstone in place for an orphan file with no row). LinkBlob
//     refuses a tombstone with meta.ErrBlobDeleting. gc then deletes the
//     bytes and drops the tombstones (DropBlobs). A crash in between leaves
//     the tombstones, and the next run finishes the deletion.
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
package gc
