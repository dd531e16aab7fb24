#!/usr/bin/env python3
"""The Python documentation's ProcessPoolExecutor example (concurrent.futures,
"ProcessPoolExecutor Example"), over the 20 numbers of Fluent Python's
primes.py, with conq.Executor in place of ProcessPoolExecutor and otherwise
the same. With no URL, conq.Executor starts a local engine (the `conq`
binary from PATH or CONQ_BIN) that serves this module's functions in worker
processes, and stops it at the end of the with block; give it a URL
(conq.Executor("http://host:8080")) to use a running conq server instead.

    pip install ./sdk/python && PATH=$PWD/bin:$PATH python3 sdk/python/examples/primes_executor.py
"""

import math

import conq

PRIMES = [
    2, 142702110479723, 299593572317531, 3333333333333301, 3333333333333333,
    3333335652092209, 4444444444444423, 4444444444444444, 4444444488888889,
    5555553133149889, 5555555555555503, 5555555555555555, 6666666666666666,
    6666666666666719, 6666667141414921, 7777777536340681, 7777777777777753,
    7777777777777777, 9999999999999917, 9999999999999999,
]


def is_prime(n):
    if n < 2:
        return False
    if n == 2:
        return True
    if n % 2 == 0:
        return False

    sqrt_n = int(math.floor(math.sqrt(n)))
    for i in range(3, sqrt_n + 1, 2):
        if n % i == 0:
            return False
    return True


def main():
    with conq.Executor() as executor:
        for number, prime in zip(PRIMES, executor.map(is_prime, PRIMES)):
            print('%d is prime: %s' % (number, prime))


if __name__ == '__main__':
    main()
