package main

import (
	"os"
	"testing"

	"github.com/lapse-dev/lapse/internal/pgtest"
)

// TestMain stops the throwaway PostgreSQL that pgtest.DSN may start. With
// LAPSE_TEST_AS_CLI=1 the test binary is the lapse command instead, so a
// test can run it as a separate process (and kill it).
func TestMain(m *testing.M) {
	if os.Getenv("LAPSE_TEST_AS_CLI") == "1" {
		main()
	}
	pgtest.Main(m)
}
