"""``python -m conq._bootstrap MAIN.py``: serve the tasks of a script to a
conq pool (the local engine of conq.Executor). The script is imported as
``__mp_main__`` (as multiprocessing's spawn does), so its ``if __name__ ==
"__main__":`` block does not run in the workers; its @conq.task functions
register themselves, and its other top-level functions are served under
``__main__:<name>`` for ``Executor.submit(plain_function)``. It also
serves functions by import path (``conq.run(imports=True)``: ``pow``,
``math.factorial``, a function of another module of the caller's), with
the caller's ``sys.path`` (``CONQ_CALLER_PATH``, as multiprocessing's
spawn passes it), so what the caller imports the workers find. Only the
caller can send it calls: the engine's API takes a token only the caller
has (``_local.LocalEngine``)."""

import importlib.util
import types
import os
import sys

from . import _local, _serve, _task


def main(argv):
    if len(argv) != 2:
        raise SystemExit("usage: python -m conq._bootstrap MAIN.py")
    path = os.path.abspath(argv[1])
    caller = os.environ.pop("CONQ_CALLER_PATH", None)
    if caller is not None:
        sys.path[:] = [p for p in caller.split(os.pathsep) if p]
    sys.path.insert(0, os.path.dirname(path))
    spec = importlib.util.spec_from_file_location("__mp_main__", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["__mp_main__"] = mod
    sys.modules["__main__"] = mod  # pickled/qualified names resolve as in the caller
    _local.BOOTSTRAPPING = True
    try:
        spec.loader.exec_module(mod)
    finally:
        _local.BOOTSTRAPPING = False
    for name, obj in list(vars(mod).items()):
        if isinstance(obj, types.FunctionType) and obj.__module__ in ("__mp_main__", "__main__"):
            key = "__main__:" + obj.__qualname__
            _task.registry.setdefault(key, _task.Task(obj, name=key))
    _serve.run(imports=True)


if __name__ == "__main__":
    main(sys.argv)
