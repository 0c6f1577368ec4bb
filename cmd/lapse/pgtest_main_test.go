package main

import (
	"testing"

	"github.com/lapse-dev/lapse/internal/pgtest"
)

// TestMain stops the throwaway PostgreSQL that pgtest.DSN may start.
func TestMain(m *testing.M) { pgtest.Main(m) }
