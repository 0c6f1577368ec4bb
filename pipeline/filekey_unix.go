//go:build unix

package pipeline

import (
	"fmt"
	"io/fs"
	"syscall"
)

// inode is the file's device and inode: a copy replaced by rename is a
// new inode, whatever its size and time.
func inode(fi fs.FileInfo) string {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fmt.Sprintf("%d:%d:", st.Dev, st.Ino)
	}
	return ""
}
