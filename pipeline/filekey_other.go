//go:build !unix

package pipeline

import "io/fs"

// inode is empty where there are none: size and time identify the file.
func inode(fs.FileInfo) string { return "" }
