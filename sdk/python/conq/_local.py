"""The local engine of conq.Executor(): a ``conq server --exec`` child
process serving the caller's module on the embedded broker."""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from typing import List, Optional

from ._errors import ConqError

__all__ = ["LocalEngine", "find_binary"]


def find_binary() -> str:
    """The conq binary: $CONQ_BIN, else ``conq`` on PATH."""
    b = os.environ.get("CONQ_BIN")
    if b:
        if not (os.path.isfile(b) and os.access(b, os.X_OK)):
            raise ConqError("CONQ_BIN=%r is not an executable file" % (b,))
        return b
    found = shutil.which("conq")
    if not found:
        raise ConqError("conq.Executor() with no URL runs a local engine with the conq binary, which is not on PATH: "
                        "install it (go install github.com/conqhq/conq/cmd/conq@latest, or make build) or set CONQ_BIN, "
                        "or give conq.Executor(url=...) a running conq server")
    return found


def main_file() -> str:
    m = sys.modules.get("__main__")
    f = getattr(m, "__file__", None)
    if not f:
        raise ConqError("conq.Executor() serves the tasks of your __main__ module, which has no file "
                        "(interactive session?): run a script, or start `conq server --exec` and pass its URL")
    return os.path.abspath(f)


#: True while a worker of the local engine imports the caller's main
#: module (_bootstrap): an Executor() started then is the main module's
#: code running again in the worker, not guarded by ``if __name__ ==
#: "__main__":``.
BOOTSTRAPPING = False


class LocalEngine(object):
    """``conq server --exec "python -m conq._bootstrap MAIN" --concurrency N``
    on a free loopback port, stopped by stop()."""

    def __init__(self, concurrency: Optional[int] = None, module_file: Optional[str] = None,
                 extra_args: Optional[List[str]] = None, start_timeout: float = 30.0) -> None:
        if BOOTSTRAPPING:
            raise ConqError("conq.Executor() was called while a worker of the local engine imported your main module "
                            "(%s) to find its functions: start the Executor under `if __name__ == \"__main__\":`, as "
                            "multiprocessing requires" % (main_file(),))
        binary = find_binary()
        main = module_file or main_file()
        n = concurrency or os.cpu_count() or 1
        self._dir = tempfile.mkdtemp(prefix="conq-local-")
        url_file = os.path.join(self._dir, "url")
        cmd = " ".join(shlex.quote(x) for x in (sys.executable, "-m", "conq._bootstrap", main))
        argv = [binary, "server", "--exec", cmd, "--concurrency", str(n), "--listen", "127.0.0.1:0",
                "--url-file", url_file, "--stop-on-stdin-eof",
                "--log-level", os.environ.get("CONQ_LOG_LEVEL", "warn")] + list(extra_args or [])
        env = dict(os.environ)
        env.pop("CONQ_BROKER", None)  # the local engine is the embedded broker
        # Its workers run any importable function they are sent (imports):
        # only this process may send them calls. The API listens on
        # loopback, where any local user could reach it, so it takes a
        # token, given in the environment (another user can read a
        # process's arguments, not its environment).
        self.token = secrets.token_urlsafe(32)
        env["CONQ_AUTH_TOKEN"] = self.token
        env["CONQ_CALLER_PATH"] = os.pathsep.join(p or os.getcwd() for p in sys.path if isinstance(p, str))
        self._log = open(os.path.join(self._dir, "server.log"), "w+b")
        # stdin is a pipe only we hold: when this process ends, however it
        # ends (SIGKILL included), the engine sees end of file and stops.
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=self._log, stderr=self._log, env=env)
        deadline = time.monotonic() + start_timeout
        while True:
            if os.path.exists(url_file):
                with open(url_file) as f:
                    self.url = f.read().strip()
                break
            if self.proc.poll() is not None:
                raise ConqError("the local conq engine exited (status %s) before it served: %s"
                                % (self.proc.returncode, self.log_tail()))
            if time.monotonic() > deadline:
                self.stop()
                raise ConqError("the local conq engine did not start within %ss: %s" % (start_timeout, self.log_tail()))
            time.sleep(0.01)

    def log_tail(self, n: int = 20) -> str:
        try:
            self._log.flush()
            with open(self._log.name, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        shutil.rmtree(self._dir, ignore_errors=True)
