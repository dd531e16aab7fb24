"""The HTTP client of ``conq server`` (docs/http-api.md): enqueue tasks,
wait for results, cancel. Standard library only.

``conq.connect(url, token=)`` sets the client that ``Task.delay``,
``conq.enqueue`` and ``conq.Executor`` use; without it the first use reads
``CONQ_URL`` and ``CONQ_TOKEN`` (the workers of ``conq server --exec`` and
``conq worker --exec`` get ``CONQ_URL`` when it is known, so a task can
enqueue follow-ups).

Connections are kept alive, one per thread, so a loop of ``delay()`` calls
costs one round trip each and no TCP handshake.
"""

from __future__ import annotations

import base64
import datetime
import http.client
import json
import os
import socket
import threading
import time
import urllib.parse
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from ._errors import ConqError, TaskCancelled, TaskFailed, WorkerCrashed

__all__ = [
    "Client",
    "APIError",
    "BadRequestError",
    "AuthError",
    "NotFoundError",
    "ConflictError",
    "PayloadTooLargeError",
    "ServerUnavailable",
    "BatchError",
    "connect",
    "default_client",
    "DEFAULT_RETENTION",
]

#: How long the result of a task enqueued from Python (``delay``,
#: ``apply_async``, ``conq.enqueue``) is kept by default, in seconds, so
#: ``AsyncResult.get()`` works without options: one hour. Pass
#: ``retention=`` (or set it on the task) to change it; 0 keeps nothing.
DEFAULT_RETENTION = 3600

# The server caps one wait at 60s by default; longer waits are chunked.
_MAX_WAIT = 30.0


class APIError(ConqError):
    """An error answer of the API: ``status`` (HTTP), ``code`` and ``message``."""

    def __init__(self, status: Optional[int], code: str, message: str, body: Any = None) -> None:
        super().__init__("%s (HTTP %s, %s)" % (message, status, code))
        self.status = status
        self.code = code
        self.message = message
        self.body = body


class BadRequestError(APIError):
    """400/415: the request was malformed or an option invalid."""


class AuthError(APIError):
    """401/403: missing or wrong credentials, or a refused request."""


class NotFoundError(APIError):
    """404: no such task or queue (or a completed task without retention)."""


class ConflictError(APIError):
    """409: a task with that ID exists, or the task's state forbids the call."""


class PayloadTooLargeError(APIError):
    """413: a payload or the request body is over the server's limit."""


class ServerUnavailable(APIError, ConnectionError):
    """503, or the server could not be reached at all."""


class BatchError(APIError):
    """Some tasks of a batch failed: ``ids[i]`` is the ID of task i or
    None, ``errors[i]`` its error (an APIError) or None."""

    def __init__(self, status, code, message, ids, errors, body=None):
        super().__init__(status, code, message, body)
        self.ids = ids
        self.errors = errors


_STATUS_ERRORS = {
    400: BadRequestError,
    401: AuthError,
    403: AuthError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    415: BadRequestError,
    503: ServerUnavailable,
}


def _error_for(status, body):
    err = (body or {}).get("error") or {}
    cls = _STATUS_ERRORS.get(status, APIError)
    return cls(status, err.get("code", "http_%s" % status), err.get("message", "HTTP %s" % status), body)


def _code_status(err):
    return {
        "invalid_argument": 400,
        "duplicate_id": 409,
        "duplicate_task": 409,
        "invalid_state": 409,
        "payload_too_large": 413,
        "task_not_found": 404,
        "queue_not_found": 404,
    }.get((err or {}).get("code"), 503)


def _duration(v):
    """A duration option as the API takes it: seconds or a Go duration."""
    if isinstance(v, datetime.timedelta):
        return v.total_seconds()
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise TypeError("duration must be seconds, a timedelta or a string like '90s', not %r" % (v,))
    return v


def _time(v):
    if isinstance(v, datetime.datetime):
        if v.tzinfo is None:
            raise ValueError("datetime %r has no time zone; use an aware datetime" % (v,))
        return v.isoformat()
    if isinstance(v, str):
        return v
    raise TypeError("time must be an aware datetime or an RFC 3339 string, not %r" % (v,))


def _int(v):
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError("want an int, not %r" % (v,))
    return v


_OPTIONS = {
    "queue": str,
    "max_retries": _int,
    "timeout": _duration,
    "process_in": _duration,
    "process_at": _time,
    "deadline": _time,
    "retention": _duration,
    "id": str,
    "unique": _duration,
    "unique_key": str,
}

# Python-side names (Celery's) of the enqueue options -> the API's.
_ALIASES = {"retries": "max_retries", "countdown": "process_in", "eta": "process_at", "task_id": "id"}


class _NoDelay(object):
    """TCP_NODELAY on the connection's socket, as urllib3 sets it:
    http.client writes a request's headers and its body with two sends,
    and with Nagle's algorithm the body may wait for the server to
    acknowledge the headers (on loopback here no delay was measurable:
    1.0-1.2 ms per workflow POST either way; across a network it can be a
    round trip)."""

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        try:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[attr-defined]
        except (OSError, AttributeError):
            pass  # not TCP (a proxy's socket, a test double): nothing to tune


class _HTTPConnection(_NoDelay, http.client.HTTPConnection):
    pass


class _HTTPSConnection(_NoDelay, http.client.HTTPSConnection):
    pass


def _encode_headers(headers: Mapping[str, str]) -> bytes:
    return b"".join(("%s: %s\r\n" % (k, v)).encode("latin-1") for k, v in headers.items())


class _Conn(object):
    """One kept-alive HTTP/1.1 connection for the client's JSON requests.

    Why not http.client: a request and its answer went through
    http.client's header building and the email package's header parser,
    about 100 us of Python per call, as much as the server took to enqueue
    the task. This writes each request in one send and reads the answer
    with a small parser: status line, headers, a body of Content-Length
    bytes, chunked, or up to the close. Anything it does not understand
    is an error (http.client.HTTPException), and the caller reconnects.
    The result stream keeps http.client (one request, many reads)."""

    def __init__(self, scheme: str, netloc: str, timeout: float) -> None:
        # http.client's host:port parsing (IPv6 brackets, the scheme's default port)
        hc = (http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection)(netloc)
        self.host, self.port = hc.host, hc.port
        self.scheme, self.netloc = scheme, netloc
        self.timeout = timeout
        self.sock: Any = None
        self.buf = b""

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        if self.scheme == "https":
            import ssl

            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)
        self.sock, self.buf = sock, b""

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock, self.buf = None, b""

    def __del__(self) -> None:
        # A thread's connection goes with its thread-local when the thread
        # ends: close the socket then, instead of leaving it to the garbage
        # collector (which warns of it: ResourceWarning, unclosed socket).
        try:
            self.close()
        except Exception:
            pass  # interpreter shutdown: nothing left to report to

    def set_timeout(self, timeout: float) -> None:
        if timeout != self.timeout:
            self.timeout = timeout
            if self.sock is not None:
                self.sock.settimeout(timeout)

    def request(self, method: str, target: str, body: Optional[bytes], head: bytes) -> Tuple[int, bytes]:
        if self.sock is None:
            self.connect()
        data = b"%s %s HTTP/1.1\r\nHost: %s\r\n%sContent-Length: %d\r\n\r\n" % (
            method.encode("ascii"), target.encode("utf-8"), self.netloc.encode("idna"), head, len(body or b""))
        self.sock.sendall(data + body if body else data)
        status, headers = self._head()
        raw = self._body(method, status, headers)
        if headers.get(b"connection", b"").lower() == b"close":
            self.close()
        return status, raw

    def _more(self) -> bool:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def _head(self) -> Tuple[int, Dict[bytes, bytes]]:
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(self.buf) > 1 << 16:
                raise http.client.HTTPException("answer headers over 64 KiB")
            if not self._more():
                if self.buf:
                    raise http.client.IncompleteRead(self.buf)
                raise http.client.RemoteDisconnected("the server closed the connection without an answer")
        lines = self.buf[:end].split(b"\r\n")
        self.buf = self.buf[end + 4:]
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise http.client.BadStatusLine(lines[0].decode("latin-1"))
        headers: Dict[bytes, bytes] = {}
        for line in lines[1:]:
            k, sep, v = line.partition(b":")
            if not sep:
                raise http.client.HTTPException("malformed answer header %r" % (line,))
            headers[k.strip().lower()] = v.strip()
        status = int(parts[1])
        if status == 100:
            return self._head()  # an interim answer: the real one follows
        return status, headers

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._more():
                raise http.client.IncompleteRead(self.buf, n - len(self.buf))
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _line(self) -> bytes:
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                out, self.buf = self.buf[:i], self.buf[i + 2:]
                return out
            if len(self.buf) > 1 << 16 or not self._more():
                raise http.client.HTTPException("bad chunked answer")

    def _body(self, method: str, status: int, headers: Dict[bytes, bytes]) -> bytes:
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return b""
        if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            parts = []
            while True:
                size = self._line().split(b";", 1)[0].strip()
                try:
                    n = int(size, 16)
                except ValueError:
                    raise http.client.HTTPException("bad chunk size %r" % (size,)) from None
                if n == 0:
                    while self._line():
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self._exactly(n))
                if self._exactly(2) != b"\r\n":
                    raise http.client.HTTPException("chunk without its CRLF")
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                raise http.client.HTTPException("bad Content-Length %r" % (length,))
            return self._exactly(int(length))
        while self._more():  # to the close
            pass
        out = self.buf
        self.close()
        return out


def _options(opts: Mapping[str, Any]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in opts.items():
        if v is None:
            continue
        k = _ALIASES.get(k, k)
        if k == "unique" and isinstance(v, Mapping):
            for uk, uv in v.items():
                if uk not in ("unique", "ttl", "key", "unique_key"):
                    raise TypeError("unique=%r: want seconds, a duration string, or a dict with ttl and/or key" % (v,))
                if uv is not None:
                    if uk in ("key", "unique_key"):
                        out["unique_key"] = str(uv)
                    else:
                        out["unique"] = _duration(uv)
            continue
        if k == "unique" and v is True:
            v = "1h"
        conv = _OPTIONS.get(k)
        if conv is None:
            raise TypeError("unknown option %r (want one of %s)" % (k, ", ".join(sorted(set(_OPTIONS) | set(_ALIASES)))))
        out[k] = conv(v)
    return out


def _task_body(kind, payload, opts):
    if not isinstance(kind, str) or not kind:
        raise ValueError("task kind must be a non-empty string")
    body = {"kind": kind}
    if isinstance(payload, (bytes, bytearray, memoryview)):
        body["payload_base64"] = base64.b64encode(bytes(payload)).decode("ascii")
    elif payload is not None:
        body["payload"] = payload
    body.update(_options(opts))
    return body


def _call_body(kind, args, kwargs, opts):
    if not isinstance(kind, str) or not kind:
        raise ValueError("task kind must be a non-empty string")
    body = {"kind": kind, "args": list(args) if args is not None else [],
            "kwargs": dict(kwargs) if kwargs is not None else {}}
    body.update(_options(opts))
    return body


def _decode_result(body):
    if "result_base64" in body:
        return base64.b64decode(body["result_base64"])
    return body.get("result")


def failure(body: Mapping[str, Any]) -> TaskFailed:
    """The exception of a dead task's result answer."""
    errors = body.get("errors") or ([body["last_error"]] if body.get("last_error") else [])
    last = errors[-1] if errors else {}
    cls = TaskFailed
    if last.get("kind") == "worker_crashed":
        cls = WorkerCrashed
    elif last.get("kind") == "cancelled":
        cls = TaskCancelled
    return cls(body.get("id"), body.get("kind"), body.get("queue"), body.get("attempts", 0), errors, body.get("state", "dead"))


def task_timeout(task_id: str, timeout: Any, body: Dict[str, Any]) -> TimeoutError:
    """The TimeoutError of a wait for a task that is not done: its state
    and, when an attempt failed already (a task waiting to retry), that
    attempt's error, from the answer at hand."""
    msg = "task %s not done after %ss (state %s)" % (task_id, timeout, body.get("state"))
    errs = body.get("errors")
    if isinstance(errs, list) and errs and isinstance(errs[-1], dict):
        last = errs[-1]
        msg += "; attempt %s failed: %s" % (last.get("attempt", len(errs)), last.get("message") or "no message")
    return TimeoutError(msg)


class Client(object):
    """A client of one conq server. Safe to share between threads (each
    thread keeps its own connection).

    ``url`` is the server's base URL; ``token`` the auth token, sent as
    ``Authorization: Bearer``; ``timeout`` the socket timeout of a request
    in seconds (result waits get their wait on top).
    """

    def __init__(self, url: str = "http://127.0.0.1:8080", token: Optional[str] = None, timeout: float = 30.0) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError("server URL %r: want http://host:port or https://host:port" % (url,))
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._scheme = parsed.scheme
        self._netloc = parsed.netloc
        self._base = parsed.path.rstrip("/")
        self._local = threading.local()
        self._headers = {"Accept": "application/json", "User-Agent": "conq-python/1", "Content-Type": "application/json"}
        if token:
            self._headers["Authorization"] = "Bearer " + token
        self._minimal_headers = dict(self._headers, Prefer="return=minimal")
        self._head = _encode_headers(self._headers)
        self._minimal_head = _encode_headers(self._minimal_headers)

    def __repr__(self) -> str:
        return "conq.Client(%r)" % (self.url,)

    # -- HTTP -------------------------------------------------------------

    def _conn(self, timeout):
        c = getattr(self._local, "conn", None)
        if c is None:
            c = _Conn(self._scheme, self._netloc, timeout)
            self._local.conn = c
        else:
            c.set_timeout(timeout)
        return c

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None

    def _request(self, method, path, body=None, query=None, timeout=None, ok=(200, 201, 204), headers=None):
        url = self._base + path
        if query:
            q = {k: v for k, v in query.items() if v is not None}
            if q:
                url += "?" + urllib.parse.urlencode(q)
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode("utf-8")
        t = timeout or self.timeout
        for attempt in (0, 1):
            c = self._conn(t)
            try:
                if headers is None:
                    head = self._head
                elif headers is self._minimal_headers:
                    head = self._minimal_head
                else:
                    head = _encode_headers(headers)
                status, raw = c.request(method, url, data, head)
                break
            except (http.client.HTTPException, OSError) as e:
                c.close()
                self._local.conn = None
                # A kept-alive connection the server closed: one fresh try
                # (only when nothing can have been applied twice: the
                # request never got an answer on a reused connection).
                if attempt == 0 and isinstance(e, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)):
                    continue
                raise ServerUnavailable(None, "connection_failed", "cannot reach conq server at %s: %s" % (self.url, e)) from None
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        if status not in ok:
            if isinstance(parsed, dict) and "tasks" in parsed and "errors" in parsed:
                return status, parsed  # batch with failures: the caller decides
            raise _error_for(status, parsed if isinstance(parsed, dict) else None)
        return status, parsed

    @staticmethod
    def _id(task_id):
        if not isinstance(task_id, str) or not task_id:
            raise ValueError("task ID must be a non-empty string")
        return urllib.parse.quote(task_id, safe="")

    # -- enqueue ----------------------------------------------------------

    def enqueue(self, kind: str, payload: Any = None, **opts: Any) -> str:
        """Enqueue one task with a JSON payload (bytes: raw) and return its ID.

        Options: queue, max_retries (retries), timeout, process_in
        (countdown), process_at (eta), deadline, retention, id (task_id),
        unique, unique_key. Raises ConflictError if ``id`` exists.
        """
        _, body = self._request("POST", "/api/v1/tasks", _task_body(kind, payload, opts), headers=self._minimal_headers)
        return body["id"]

    def call(self, kind: str, args: Optional[Iterable[Any]] = None, kwargs: Optional[Mapping[str, Any]] = None,
             **opts: Any) -> "AsyncResult":
        """Enqueue a call ``kind(*args, **kwargs)`` (encoding args) and return
        its AsyncResult. ``retention`` defaults to DEFAULT_RETENTION."""
        opts.setdefault("retention", DEFAULT_RETENTION)
        if opts["retention"] is None:
            opts["retention"] = DEFAULT_RETENTION
        _, body = self._request("POST", "/api/v1/tasks", _call_body(kind, args, kwargs, opts), headers=self._minimal_headers)
        return AsyncResult(body["id"], queue=body.get("queue"), client=self, kind=kind)

    enqueue_call = call

    def call_many(self, kind: str, calls: Sequence[Tuple[Sequence[Any], Mapping[str, Any]]], **opts: Any) -> List[str]:
        """Enqueue many calls of one kind in one request; returns their IDs
        in order (BatchError if some were refused)."""
        if not calls:
            return []
        items = [{"kind": kind, "args": list(a), "kwargs": dict(k)} for a, k in calls]
        return self._enqueue_items(items, opts)

    def enqueue_many(self, tasks: Iterable[Any], **opts: Any) -> List[str]:
        """Enqueue tasks in one request and return their IDs in order.

        ``tasks`` holds ``(kind, payload)`` pairs or dicts with ``kind``,
        ``payload`` (or ``args``/``kwargs``) and per-task options; ``opts``
        apply to every task (per-task options win). If some fail, raises
        BatchError with the IDs of those that were enqueued.
        """
        items = []
        for t in tasks:
            if isinstance(t, dict):
                t = dict(t)
                kind = t.pop("kind", None)
                if "args" in t or "kwargs" in t:
                    items.append(_call_body(kind, t.pop("args", None), t.pop("kwargs", None), t))
                else:
                    payload = t.pop("payload", None)
                    items.append(_task_body(kind, payload, t))
            else:
                kind, payload = t
                items.append(_task_body(kind, payload, {}))
        return self._enqueue_items(items, opts)

    def _enqueue_items(self, items, opts):
        if not items:
            return []
        body = {"tasks": items}
        body.update(_options(opts))
        # Prefer: return=minimal: the answer holds each task's ID only
        # (only IDs are read here), not its full view.
        status, resp = self._request("POST", "/api/v1/tasks", body, headers=self._minimal_headers)
        ids = [t["id"] if t else None for t in resp.get("tasks", [])]
        if status != 201:
            errors = [_error_for(_code_status(e), {"error": e}) if e else None for e in resp.get("errors", [])]
            top = resp.get("error") or {}
            raise BatchError(status, top.get("code", "batch_failed"), top.get("message", "some tasks failed"), ids, errors, resp)
        return ids

    # -- results ----------------------------------------------------------

    def task(self, task_id: str, queue: Optional[str] = None) -> Dict[str, Any]:
        """The task as stored: a dict (docs/http-api.md, "Task")."""
        _, body = self._request("GET", "/api/v1/tasks/" + self._id(task_id), query={"queue": queue})
        return body

    def poll(self, task_id: str, wait: float = 0.0, queue: Optional[str] = None) -> Dict[str, Any]:
        """One result request: the answer body (``done`` says if it is)."""
        _, body = self._request(
            "GET", "/api/v1/tasks/%s/result" % self._id(task_id),
            query={"wait": "%.3fs" % wait, "queue": queue}, timeout=self.timeout + wait, ok=(200, 202))
        return body

    def result(self, task_id: str, timeout: Optional[float] = None, queue: Optional[str] = None) -> Any:
        """Wait for the task to finish and return its result (the decoded JSON
        value, or bytes for a non-JSON result; None if empty).

        Raises TaskFailed (WorkerCrashed, TaskCancelled) if the task is dead,
        TimeoutError if it is not done within ``timeout`` seconds (None: wait
        for ever), NotFoundError if it does not exist or completed without
        retention.
        """
        deadline = None if timeout is None else time.monotonic() + float(timeout)
        while True:
            wait = _MAX_WAIT
            if deadline is not None:
                wait = max(0.0, min(wait, deadline - time.monotonic()))
            body = self.poll(task_id, wait, queue)
            if body.get("done"):
                if body.get("state") != "completed":
                    raise failure(body)
                return _decode_result(body)
            if deadline is not None and time.monotonic() >= deadline:
                raise task_timeout(task_id, timeout, body)

    def wait_many(self, ids: Sequence[str], wait: float = 0.0, queue: Optional[str] = None,
                  min_done: int = 1) -> Tuple[Dict[str, Dict[str, Any]], List[str]]:
        """Batched wait (POST /api/v1/results:wait): waits up to ``wait``
        seconds until at least ``min_done`` of ``ids`` are done, and returns
        (the result answers of those done, by ID; the IDs the server does
        not know)."""
        if not ids:
            return {}, []
        body: Dict[str, Any] = {"ids": list(ids), "wait": "%.3fs" % wait, "min": min_done}
        if queue:
            body["queue"] = queue
        _, resp = self._request("POST", "/api/v1/results:wait", body, timeout=self.timeout + wait)
        return {r["id"]: r for r in resp.get("results", [])}, list(resp.get("not_found") or [])

    def stream_results(self, ids: Sequence[str], wait: float = 30.0,
                       queue: Optional[str] = None) -> Iterator[Dict[str, Any]]:
        """Streamed wait (POST /api/v1/results:stream): yields one result
        answer per task as it finishes (``{"id": ..., "not_found": True}``
        for a task the server does not know), in the order they finish, and
        last ``{"end": True, "pending": [...]}`` with those not done within
        ``wait`` seconds. Each task is read once on the server, however
        many are waited for. The stream uses a connection of its own."""
        if not ids:
            return
        data = json.dumps({"ids": list(ids), "wait": "%.3fs" % wait, **({"queue": queue} if queue else {})},
                          separators=(",", ":")).encode("utf-8")
        cls = _HTTPSConnection if self._scheme == "https" else _HTTPConnection
        conn = cls(self._netloc, timeout=self.timeout + wait)
        try:
            try:
                conn.request("POST", self._base + "/api/v1/results:stream", body=data, headers=self._headers)
                resp = conn.getresponse()
                if resp.status != 200:
                    raw = resp.read()
                    try:
                        parsed = json.loads(raw) if raw else None
                    except ValueError:
                        parsed = None
                    raise _error_for(resp.status, parsed if isinstance(parsed, dict) else None)
                # Read what has arrived (read1: one chunk or less, without
                # waiting for more) and decode its whole lines in one call:
                # a busy stream sends many lines per write.
                rest = b""
                while True:
                    data = resp.read1(1 << 16)
                    if not data:
                        raise ServerUnavailable(None, "stream_ended", "the result stream from %s ended early" % self.url)
                    data = rest + data
                    cut = data.rfind(b"\n")
                    if cut < 0:
                        rest = data
                        continue
                    rest = data[cut + 1:]
                    lines = data[:cut].replace(b"\n", b",")
                    for msg in json.loads(b"[" + lines + b"]"):
                        yield msg
                        if msg.get("end"):
                            return
            except (http.client.HTTPException, OSError) as e:
                raise ServerUnavailable(None, "connection_failed", "cannot reach conq server at %s: %s" % (self.url, e)) from None
        finally:
            conn.close()

    def cancel(self, task_id: str, queue: Optional[str] = None) -> Tuple[str, Dict[str, Any]]:
        """Cancel a task: a waiting one goes to dead (kind "cancelled") at once,
        a running one is asked to stop. Returns (state it was in, task)."""
        _, body = self._request("POST", "/api/v1/tasks/%s/cancel" % self._id(task_id), query={"queue": queue})
        return body["was"], body["task"]

    def cancel_many(self, ids: Sequence[str], queue: Optional[str] = None) -> List[Optional[str]]:
        """Batched cancel (POST /api/v1/tasks:cancel): the state each task
        was in (None for one that could not be cancelled: done or unknown)."""
        if not ids:
            return []
        body: Dict[str, Any] = {"ids": list(ids)}
        if queue:
            body["queue"] = queue
        _, resp = self._request("POST", "/api/v1/tasks:cancel", body)
        return [r.get("was") or None for r in resp.get("results", [])]

    def retry(self, task_id: str, queue: Optional[str] = None) -> Dict[str, Any]:
        """Move a dead, retry or scheduled task to pending now; returns the task."""
        _, body = self._request("POST", "/api/v1/tasks/%s/retry" % self._id(task_id), query={"queue": queue})
        return body

    def delete(self, task_id: str, queue: Optional[str] = None) -> None:
        """Delete a task that is not running (ConflictError if it is)."""
        self._request("DELETE", "/api/v1/tasks/" + self._id(task_id), query={"queue": queue})

    def workers(self) -> List[Dict[str, Any]]:
        """The live workers, with their queues, concurrency and running tasks."""
        _, body = self._request("GET", "/api/v1/workers")
        return body["workers"]

    def schedules(self) -> List[Dict[str, Any]]:
        """The periodic entries published by the running schedulers."""
        _, body = self._request("GET", "/api/v1/schedules")
        return body["schedules"]

    def workflows(self, state: Optional[str] = None, limit: int = 100,
                  cursor: Optional[str] = None) -> Dict[str, Any]:
        """A page of workflows, newest first (GET /api/v1/workflows):
        ``{"workflows": [{"id", "queue", "state", "steps", "done",
        "created_at", ...}], "next"?}``; pass ``next`` as ``cursor`` for
        the page after. ``state``: running, completed, failed or cancelled."""
        query: Dict[str, Any] = {"limit": limit}
        if state is not None:
            query["state"] = state
        if cursor is not None:
            query["cursor"] = cursor
        _, body = self._request("GET", "/api/v1/workflows", query=query)
        return body

    # -- queues -----------------------------------------------------------

    def queues(self) -> List[Dict[str, Any]]:
        """Every queue: dicts with name, paused and counts per state."""
        _, body = self._request("GET", "/api/v1/queues")
        return body["queues"]

    def tasks(self, queue: str, state: str = "pending", offset: int = 0, limit: int = 50) -> List[Dict[str, Any]]:
        """Tasks of a queue in a state, oldest first."""
        _, body = self._request("GET", "/api/v1/queues/%s/tasks" % urllib.parse.quote(queue, safe=""),
                                query={"state": state, "offset": offset, "limit": limit})
        return body["tasks"]

    def pause(self, queue: str) -> Dict[str, Any]:
        """Stop workers from taking the queue's tasks."""
        _, body = self._request("POST", "/api/v1/queues/%s/pause" % urllib.parse.quote(queue, safe=""))
        return body

    def resume(self, queue: str) -> Dict[str, Any]:
        """Undo pause."""
        _, body = self._request("POST", "/api/v1/queues/%s/resume" % urllib.parse.quote(queue, safe=""))
        return body


_default: Optional[Client] = None
_default_lock = threading.Lock()


def connect(url: Optional[str] = None, token: Optional[str] = None, timeout: float = 30.0) -> Client:
    """Set (and return) the client used by ``delay``, ``apply_async``,
    ``conq.enqueue`` and ``conq.Executor(url=None)`` when no engine is
    given. ``url`` defaults to ``CONQ_URL``, ``token`` to ``CONQ_TOKEN``."""
    global _default
    url = url or os.environ.get("CONQ_URL")
    if not url:
        raise ConqError("conq.connect(): no URL given and CONQ_URL is not set")
    c = Client(url, token=token if token is not None else os.environ.get("CONQ_TOKEN") or None, timeout=timeout)
    with _default_lock:
        _default = c
    return c


def default_client() -> Client:
    """The client set by connect(), or one for CONQ_URL / CONQ_TOKEN."""
    global _default
    c = _default
    if c is not None:
        return c
    with _default_lock:
        if _default is None:
            url = os.environ.get("CONQ_URL")
            if not url:
                raise ConqError("no conq server to send the task to: call conq.connect(\"http://host:port\") "
                                "or set CONQ_URL (conq server prints its URL), or use conq.Executor()")
            _default = Client(url, token=os.environ.get("CONQ_TOKEN") or None)
        return _default


def enqueue(kind: str, *args: Any, payload: Any = None, client: Optional[Client] = None, **opts: Any) -> "AsyncResult":
    """Enqueue a task defined elsewhere (a Go handler, another module) by
    its name. With positional arguments, or ``kwargs=``, it is a call
    ``kind(*args, **kwargs)`` (encoding args); with ``payload=`` the payload
    is that one JSON value (bytes: raw), as Go's ``EnqueueJSON`` sends.
    Options as ``apply_async``. Returns an AsyncResult."""
    c = client if client is not None else default_client()
    kwargs = opts.pop("kwargs", None)
    if opts.get("retention") is None:
        opts["retention"] = DEFAULT_RETENTION
    if payload is not None and (args or kwargs):
        raise TypeError("conq.enqueue(%r): give payload= or arguments, not both" % (kind,))
    if payload is not None:
        _, body = c._request("POST", "/api/v1/tasks", _task_body(kind, payload, opts), headers=c._minimal_headers)
        return AsyncResult(body["id"], queue=body.get("queue"), client=c, kind=kind)
    return c.call(kind, args, kwargs, **opts)


from ._result import AsyncResult  # noqa: E402  (AsyncResult refers back to Client)
