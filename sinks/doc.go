// Package sinks is where lapse's data goes: Parquet writers, the lifecycle
// DuckDB database, changesets, the Postgres applier and the HTML report.
package sinks
