// Package tardiff makes and applies tar-diff deltas: the format of
// containers/tar-diff (media type application/vnd.tar-diff) that the
// flatpak client (1.7.3 and later) applies to update an installed app from
// one OCI layer to the next without downloading the new layer.
//
// # Format
//
// A delta is the 8 bytes "tardf1\n\x00" followed by one zstd stream of
// operations. Each operation is an op byte, a size (unsigned LEB128
// varint) and, for some ops, size bytes of data:
//
//	0 Data     emit the data
//	1 Open     data is a path in the old tree; it becomes the source, position 0
//	2 Copy     emit size bytes of the source from its position, and advance it
//	3 AddData  emit the data added bytewise (mod 256) to size bytes of the source
//	4 Seek     set the source position to size
//
// Applying the operations in order writes the new tar byte for byte. Only
// the contents of regular files of the old tree are referenced; tar
// headers, padding and everything else are Data. Paths are the tar names
// made relative and lexically clean (path.Clean("/"+name) without the
// leading slash), as containers/tar-diff writes them and flatpak resolves
// them against the checkout of the installed commit.
//
// # Generator
//
// Diff reads the old tar once and spools the contents of its regular files
// to a temporary file, indexed by path and by sha256; it then streams the
// new tar. Headers and padding become Data. Each regular file of the new
// tar is spooled too and then
//
//   - reused whole (Open + Copy) when a file of the old tree has the same
//     contents (the same path first, then any path: a rename);
//   - diffed when the old tree has a file at the same path and both are at
//     most Options.MaxDiffFileSize: blocks of the old file are indexed by
//     a rolling checksum, the new file is scanned for them, and each match
//     (checked byte for byte and extended as far as it goes) becomes a
//     Seek + Copy, the rest Data;
//   - sent as Data otherwise.
//
// Memory is bounded whatever the sizes: the block index of one old file at
// a time, with the block size grown so the index fits in Options.MaxMemory,
// and fixed buffers; file contents stay on disk. The zstd window is 8 MiB
// (libzstd decodes windows up to 128 MiB by default).
//
// Why not github.com/containers/tar-diff itself: v0.1.2, the only version
// the module proxy serves, turns an analysis error into an empty (wrong)
// diff, writes its temporary files to a hard-coded /var/tmp, and its bsdiff
// needs about 16 bytes of memory per byte of the old file; Berth makes
// deltas inside a long-running server and must bound memory and report
// errors. Its format and path rules are followed exactly; the end-to-end
// test updates an app with the real flatpak client through a delta made
// here, and compares the result with a full download.
//
// # Applier
//
// Apply rebuilds the new tar from a delta and a Source of the old tree's
// files (TarSource spools them from the old tar). It is strict: a wrong
// header, an unknown op, a Copy or AddData without an open file or past
// its end, a path that is empty or escapes the tree, sizes beyond limits,
// and anything after the stream are errors; its memory is a few fixed
// buffers. Berth applies every delta it makes before publishing it.
package tardiff
