package main

import "runtime/debug"

// gcPercent is the collector's target when GOGC is not set. The gateway's
// live heap is small (config, keys, caches) while every proxied request
// allocates several KB inside net/http, so Go's default of 100 collects
// many times a second under load. At 400 the heap may grow to five times
// the live data and a proxied request costs about a tenth less CPU
// (bench/README.md). GOGC in the environment still wins.
const gcPercent = 400

// tuneGC applies gcPercent unless the operator chose GOGC.
func tuneGC(env Env) {
	if env.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
}
