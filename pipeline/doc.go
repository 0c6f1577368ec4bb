// Package pipeline holds the nightly run: the stages snapshot → plan →
// resolve → classify → publish, their ordering, checkpoints and run
// manifest. Read runner.go to see the whole night: RunNight runs the stage
// functions of stages.go in order over the files internal/night names,
// with what env.go opens for them (the lifecycle database, the cache, the
// provider chain), guards.go's checks and retention.go's clean-up after,
// recording each stage in the run manifest (manifest.go) and the lifecycle
// database. Each stage has its file (snapshot.go, plan.go with
// reverify.go, resolve.go with journal.go and states.go, classify*.go,
// publish.go). What the stages use but is not theirs lives elsewhere: the
// normalizer in sources/address, the states writer in cache, the
// Prometheus textfile in sinks/metrics, the run lock in internal/flock,
// progress printers in cmd/lapse.
package pipeline
