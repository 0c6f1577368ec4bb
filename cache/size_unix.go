//go:build unix

package cache

import (
	"io/fs"
	"syscall"
)

// allocated is the space a file takes on disk: Badger preallocates its
// value log and memtable files sparsely, so their length overstates it.
func allocated(fi fs.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int64(st.Blocks) * 512
	}
	return fi.Size()
}
