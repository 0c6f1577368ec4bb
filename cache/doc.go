// Package cache is the Badger-backed cache of domain lifecycles: the latest
// Lifecycle per registrable domain with its evidence, and the time of its
// next check, chosen by where the domain stands in its lifecycle.
package cache
