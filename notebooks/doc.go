// Package notebooks holds the trend-analysis notebooks over the lifecycle
// database: SQL a data team runs in DuckDB to follow flags, un-verified
// addresses, states by TLD and lookup cost over time.
package notebooks
