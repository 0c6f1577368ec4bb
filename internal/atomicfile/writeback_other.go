//go:build !linux

package atomicfile

import "os"

// startWriteback does nothing here: Commit's fsync writes the file.
func startWriteback(*os.File, int64, int64) {}
