"""conq._shm: segments of this process mapped back through /proc, no fd or
mapping left after release (counted in /proc/self)."""
import os
import sys
import unittest

from conq import _shm


def counts():
    fds = 0
    for f in os.listdir("/proc/self/fd"):
        try:
            fds += "memfd:conq-shm" in os.readlink("/proc/self/fd/" + f)
        except OSError:
            pass
    with open("/proc/self/maps") as m:
        return fds, m.read().count("memfd:conq-shm")


@unittest.skipUnless(_shm.supported(), "shared memory needs Linux with memfd and /proc")
class ShmTest(unittest.TestCase):
    def test_round_trip_and_no_leaks(self):
        before = counts()
        sent = []
        owner = _shm.Owner(lambda sid, b: sent.append((sid, b)))
        peers = _shm.Peers()
        seg = owner.take(3 << 20)
        seg.mm[:5] = b"hello"
        h = seg.handle(os.getpid(), 1, 4)
        m, view = peers.view(h)
        self.assertTrue(view.readonly)
        self.assertEqual(bytes(view), b"ello")
        self.assertEqual(_shm.offset_in(m.mm, view), 1)
        self.assertIsNone(_shm.offset_in(m.mm, memoryview(b"ello")))
        view.release()
        peers.gone(seg.id)
        self.assertEqual(peers.count(), 0)
        seg.sent = True
        owner.done(seg.id)  # kept for reuse
        self.assertIs(owner.take(1 << 20), seg)
        owner.close()
        self.assertEqual(counts(), before)

    def test_unsealed_is_refused(self):
        fd = os.memfd_create("conq-shm", os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, 4096)
            h = _shm.HANDLE.pack(os.getpid(), fd, 9, 4096, 0, 10)
            with self.assertRaisesRegex(_shm.ShmUnavailable, "not a memfd sealed"):
                _shm.Peers().view(h)
        finally:
            os.close(fd)

    def test_bad_handles(self):
        p = _shm.Peers()
        for h in (b"short", _shm.HANDLE.pack(os.getpid(), 0, 0, 4096, 0, 1), _shm.HANDLE.pack(os.getpid(), 0, 1, 4096, 4000, 100)):
            with self.assertRaises(_shm.ShmUnavailable):
                p.view(h)


class InterpVersionTest(unittest.TestCase):
    @unittest.skipIf(sys.version_info >= (3, 13), "this Python has sub-interpreters")
    def test_below_313(self):
        from conq import _interp

        with self.assertRaisesRegex(SystemExit, r"needs Python 3.13 or newer.*this is Python 3\.\d+"):
            _interp.check_version()


if __name__ == "__main__":
    unittest.main()
