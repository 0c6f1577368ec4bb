// Package pipeline holds the nightly run: the stages snapshot → plan →
// resolve → classify → publish, their ordering, checkpoints and run
// manifest. Read runner.go to see the whole night.
package pipeline
