//go:build unix

package auth

import (
	"io/fs"
	"syscall"
)

// inode is the file's device and inode number, so a file replaced by a
// rename within the same mtime tick and with the same size is still seen
// as changed.
func inode(fi fs.FileInfo) (uint64, uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), uint64(st.Ino) //nolint:unconvert // types differ across platforms
	}
	return 0, 0
}
