//go:build race

package e2e

// RaceEnabled: this test binary runs under the race detector, and so does the
// daemon it builds.
const RaceEnabled = true
