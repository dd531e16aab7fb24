// Package ident makes the IDs that workers and schedulers publish.
package ident

import (
	"crypto/rand"
	"fmt"
	"os"
)

// New returns host:pid:random, unique across processes and restarts and
// readable in a listing.
func New() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), rand.Text()[:8])
}
