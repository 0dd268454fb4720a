package main

// memoryLimitHeadroom is the heap the worker needs besides ingest request
// bodies: BullMQ batches in hand, the detectors' windows, the span store and
// the collector's working room.
const memoryLimitHeadroom = 128 << 20

// softMemoryLimit is the Go runtime's soft memory limit for an ingest budget
// (http.maxInFlightBytes), or -1 when GOMEMLIMIT in the environment decides.
// A held request byte costs about two bytes of live heap while its events are
// parsed and stored; without a limit, the collector's target (GOGC=120) lets
// the heap grow to 2.2 times that before collecting, so a burst of large
// requests would take the process to several times its budget.
func softMemoryLimit(lookupEnv func(string) (string, bool), budget int64) int64 {
	if _, set := lookupEnv("GOMEMLIMIT"); set {
		return -1
	}
	return 2*budget + memoryLimitHeadroom
}
