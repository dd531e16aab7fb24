package primes

import (
	"math"
	"math/big"
	"testing"
)

func TestIsPrimeOnNumbers(t *testing.T) {
	if testing.Short() {
		t.Skip("trial division of 16-digit primes takes seconds")
	}
	// The primes among NUMBERS, as primes.py reports them; the slow
	// non-primes (3333335652092209, ...) are squares of primes.
	want := map[uint64]bool{
		2: true, 142702110479723: true, 299593572317531: true,
		3333333333333301: true, 4444444444444423: true, 5555555555555503: true,
		6666666666666719: true, 7777777777777753: true, 9999999999999917: true,
	}
	for _, n := range Numbers {
		got := IsPrime(n)
		if got != want[n] {
			t.Errorf("IsPrime(%d) = %v, want %v", n, got, want[n])
		}
		// ProbablyPrime is exact below 2^64.
		if big := new(big.Int).SetUint64(n).ProbablyPrime(0); got != big {
			t.Errorf("IsPrime(%d) = %v, math/big says %v", n, got, big)
		}
	}
}

func TestIsPrimeAgreesWithBig(t *testing.T) {
	for n := uint64(0); n < 20000; n++ {
		if got, want := IsPrime(n), new(big.Int).SetUint64(n).ProbablyPrime(20); got != want {
			t.Fatalf("IsPrime(%d) = %v, want %v", n, got, want)
		}
	}
}

func TestIsqrt(t *testing.T) {
	cases := []uint64{0, 1, 2, 3, 4, 15, 16, 17, 1<<52 + 1, 1<<53 - 1, 1 << 53, 1<<53 + 1,
		9999999999999999, 4444444488888889, 1<<62 - 1, math.MaxUint64 - 1, math.MaxUint64}
	for r := uint64(94906260); r < 94906270; r++ { // squares near 2^53
		cases = append(cases, r*r-1, r*r, r*r+1)
	}
	for _, n := range cases {
		want := new(big.Int).Sqrt(new(big.Int).SetUint64(n)).Uint64()
		if got := Isqrt(n); got != want {
			t.Errorf("Isqrt(%d) = %d, want %d", n, got, want)
		}
	}
}
