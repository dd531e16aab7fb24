// Package bench holds comparative benchmarks of conq against other Go
// worker pools. It is its own module so that the peers it measures are not
// dependencies of conq. Run it with
//
//	go test -run '^$' -bench Pool -benchmem -count 5
package bench
