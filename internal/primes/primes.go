// Package primes holds the CPU-bound workload of Fluent Python, 2nd
// edition, chapter 19 (primes.py): trial division over twenty 16-digit
// numbers. Every conq execution mode (goroutine pool, process pool, task
// queue) and the Python reference scripts in bench/python run the same
// work, so their timings compare.
package primes

import "math"

// Numbers are NUMBERS from primes.py, in the book's order.
var Numbers = []uint64{
	2,
	142702110479723,
	299593572317531,
	3333333333333301,
	3333333333333333,
	3333335652092209,
	4444444444444423,
	4444444444444444,
	4444444488888889,
	5555553133149889,
	5555555555555503,
	5555555555555555,
	6666666666666666,
	6666666666666719,
	6666667141414921,
	7777777536340681,
	7777777777777753,
	7777777777777777,
	9999999999999917,
	9999999999999999,
}

// IsPrime is primes.py's is_prime: trial division by every odd number up
// to the square root. It is deliberately naive; it is the benchmark.
func IsPrime(n uint64) bool {
	if n < 2 {
		return false
	}
	if n == 2 {
		return true
	}
	if n%2 == 0 {
		return false
	}
	root := Isqrt(n)
	for i := uint64(3); i <= root; i += 2 {
		if n%i == 0 {
			return false
		}
	}
	return true
}

// Isqrt is math.isqrt: the largest r with r*r <= n.
func Isqrt(n uint64) uint64 {
	r := uint64(math.Sqrt(float64(n)))
	// float64 has 53 bits of mantissa: correct the estimate either way.
	for r > 0 && (r > math.MaxUint32 || r*r > n) {
		r--
	}
	for r+1 <= math.MaxUint32 && (r+1)*(r+1) <= n {
		r++
	}
	return r
}
