//go:build unix

package main

import "syscall"

// restrictUmask adds 027 to the process umask (keeping any stricter bits
// the operator set): whatever a library creates with its own default mode
// (DuckDB's lapse.duckdb.wal, re-created after every checkpoint; Badger's
// tables and value logs, created as the cache grows) is then at most
// 0640, and folders at most 0750. lapse's own files hold their modes
// explicitly (0600 with addresses, 0640 without).
func restrictUmask() {
	old := syscall.Umask(0o027)
	syscall.Umask(old | 0o027)
}
