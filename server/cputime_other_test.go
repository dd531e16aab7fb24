//go:build !unix

package server

import "time"

// processCPU is not known here (see cputime_unix_test.go).
func processCPU() (time.Duration, bool) { return 0, false }
