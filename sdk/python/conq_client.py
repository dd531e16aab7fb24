"""conq HTTP client for Python: enqueue tasks and read their results through
``conq server``'s JSON API (docs/http-api.md).

One module, standard library only, Python >= 3.9::

    from conq_client import Client, TaskFailed

    c = Client("http://127.0.0.1:8080", token=None)
    task_id = c.enqueue("email.send", {"to": "a@example.com"}, queue="mail",
                        max_retries=3, retention=3600)
    try:
        print(c.result(task_id, timeout=30))
    except TaskFailed as e:
        print("failed:", e.last_error["message"])

Payloads are JSON values (sent as the task's JSON payload); pass bytes to
send raw bytes (base64 on the wire). Durations are seconds (int or float),
``datetime.timedelta`` or Go duration strings such as ``"1m30s"``.

A task's result can only be read if the task was enqueued with
``retention``: without it the broker deletes completed tasks at once.
"""

import base64
import datetime
import json
import time
import urllib.error
import urllib.parse
import urllib.request

__all__ = [
    "Client",
    "ConqError",
    "BadRequestError",
    "AuthError",
    "NotFoundError",
    "ConflictError",
    "PayloadTooLargeError",
    "ServerUnavailable",
    "BatchError",
    "TaskFailed",
]

# The server caps one wait at 60s by default; longer waits are chunked.
_MAX_WAIT = 30.0


class ConqError(Exception):
    """An error answer of the API: ``status`` (HTTP), ``code`` and ``message``."""

    def __init__(self, status, code, message, body=None):
        super().__init__("%s (HTTP %s, %s)" % (message, status, code))
        self.status = status
        self.code = code
        self.message = message
        self.body = body


class BadRequestError(ConqError):
    """400/415: the request was malformed or an option invalid."""


class AuthError(ConqError):
    """401/403: missing or wrong credentials, or a refused request."""


class NotFoundError(ConqError):
    """404: no such task or queue (or a completed task without retention)."""


class ConflictError(ConqError):
    """409: a task with that ID exists, or the task's state forbids the call."""


class PayloadTooLargeError(ConqError):
    """413: a payload or the request body is over the server's limit."""


class ServerUnavailable(ConqError, ConnectionError):
    """503, or the server could not be reached at all."""


class BatchError(ConqError):
    """Some tasks of enqueue_many failed: ``ids[i]`` is the ID of task i or
    None, ``errors[i]`` its error (a ConqError) or None."""

    def __init__(self, status, code, message, ids, errors, body=None):
        super().__init__(status, code, message, body)
        self.ids = ids
        self.errors = errors


class TaskFailed(Exception):
    """The task is dead: every attempt failed (or one gave up). ``errors`` is
    the list of attempt errors (dicts with attempt, at, kind, message and
    maybe stack), oldest first; ``last_error`` is the last one."""

    def __init__(self, task_id, kind, queue, attempts, errors):
        self.task_id = task_id
        self.kind = kind
        self.queue = queue
        self.attempts = attempts
        self.errors = errors or []
        self.last_error = self.errors[-1] if self.errors else {}
        msg = self.last_error.get("message", "no error recorded")
        super().__init__("task %s (kind %r, queue %r) failed after %d attempt(s): %s"
                         % (task_id, kind, queue, attempts, msg))


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
    cls = _STATUS_ERRORS.get(status, ConqError)
    return cls(status, err.get("code", "http_%d" % status), err.get("message", "HTTP %d" % status), body)


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


_OPTIONS = {
    "queue": str,
    "max_retries": int,
    "timeout": _duration,
    "process_in": _duration,
    "process_at": _time,
    "deadline": _time,
    "retention": _duration,
    "id": str,
}


def _options(opts):
    out = {}
    for k, v in opts.items():
        if v is None:
            continue
        conv = _OPTIONS.get(k)
        if conv is None:
            raise TypeError("unknown option %r (want one of %s)" % (k, ", ".join(sorted(_OPTIONS))))
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


def _decode_result(body):
    if "result_base64" in body:
        return base64.b64decode(body["result_base64"])
    return body.get("result")


class Client(object):
    """A client of one conq server. Safe to share between threads (each call
    is one HTTP request).

    ``url`` is the server's base URL; ``token`` the auth token, sent as
    ``Authorization: Bearer``; ``timeout`` the socket timeout of a request
    in seconds (result waits get their wait on top).
    """

    def __init__(self, url="http://127.0.0.1:8080", token=None, timeout=30.0):
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError("server URL %r: want http://host:port or https://host:port" % (url,))
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    # -- HTTP -------------------------------------------------------------

    def _request(self, method, path, body=None, query=None, timeout=None, ok=(200, 201, 204)):
        url = self.url + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = None
        headers = {"Accept": "application/json", "User-Agent": "conq-python-client/1"}
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise ServerUnavailable(None, "connection_failed", "cannot reach conq server at %s: %s" % (self.url, reason))
        try:
            parsed = json.loads(raw.decode("utf-8")) if raw else None
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

    # -- tasks ------------------------------------------------------------

    def enqueue(self, kind, payload=None, **opts):
        """Enqueue one task and return its ID.

        Options: queue, max_retries, timeout, process_in, process_at,
        deadline, retention, id. Raises ConflictError if ``id`` exists.
        """
        _, body = self._request("POST", "/api/v1/tasks", _task_body(kind, payload, opts))
        return body["id"]

    def enqueue_many(self, tasks, **opts):
        """Enqueue tasks in one request and return their IDs in order.

        ``tasks`` holds ``(kind, payload)`` pairs or dicts with ``kind``,
        ``payload`` and per-task options; ``opts`` apply to every task
        (per-task options win). If some fail, raises BatchError with the
        IDs of those that were enqueued.
        """
        items = []
        for t in tasks:
            if isinstance(t, dict):
                t = dict(t)
                kind = t.pop("kind", None)
                payload = t.pop("payload", None)
                items.append(_task_body(kind, payload, t))
            else:
                kind, payload = t
                items.append(_task_body(kind, payload, {}))
        if not items:
            return []
        body = {"tasks": items}
        body.update(_options(opts))
        status, resp = self._request("POST", "/api/v1/tasks", body)
        ids = [t["id"] if t else None for t in resp.get("tasks", [])]
        if status != 201:
            errors = [_error_for(_code_status(e), {"error": e}) if e else None for e in resp.get("errors", [])]
            top = resp.get("error") or {}
            raise BatchError(status, top.get("code", "batch_failed"), top.get("message", "some tasks failed"), ids, errors, resp)
        return ids

    def task(self, task_id, queue=None):
        """The task as stored: a dict (docs/http-api.md, "Task")."""
        _, body = self._request("GET", "/api/v1/tasks/" + self._id(task_id), query={"queue": queue})
        return body

    def result(self, task_id, timeout=None, queue=None):
        """Wait for the task to finish and return its result (the decoded JSON
        value, or bytes for a non-JSON result; None if empty).

        Raises TaskFailed if the task is dead, TimeoutError if it is not done
        within ``timeout`` seconds (None: wait for ever), NotFoundError if it
        does not exist or completed without retention.
        """
        deadline = None if timeout is None else time.monotonic() + float(timeout)
        while True:
            wait = _MAX_WAIT
            if deadline is not None:
                wait = max(0.0, min(wait, deadline - time.monotonic()))
            status, body = self._request(
                "GET", "/api/v1/tasks/%s/result" % self._id(task_id),
                query={"wait": "%.3fs" % wait, "queue": queue}, timeout=self.timeout + wait, ok=(200, 202))
            if status == 200 and body.get("done"):
                if body.get("state") == "dead":
                    raise TaskFailed(body.get("id"), body.get("kind"), body.get("queue"),
                                     body.get("attempts", 0), body.get("errors"))
                return _decode_result(body)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError("task %s not done after %ss (state %s)" % (task_id, timeout, body.get("state")))

    def retry(self, task_id, queue=None):
        """Move a dead, retry or scheduled task to pending now; returns the task."""
        _, body = self._request("POST", "/api/v1/tasks/%s/retry" % self._id(task_id), query={"queue": queue})
        return body

    def cancel(self, task_id, queue=None):
        """Cancel a task: a waiting one goes to dead (kind "cancelled") at once,
        a running one is asked to stop. Returns (state it was in, task)."""
        _, body = self._request("POST", "/api/v1/tasks/%s/cancel" % self._id(task_id), query={"queue": queue})
        return body["was"], body["task"]

    def workers(self):
        """The live workers, with their queues, concurrency and running tasks."""
        _, body = self._request("GET", "/api/v1/workers")
        return body["workers"]

    def schedules(self):
        """The periodic entries published by the running schedulers."""
        _, body = self._request("GET", "/api/v1/schedules")
        return body["schedules"]

    def delete(self, task_id, queue=None):
        """Delete a task that is not running (ConflictError if it is)."""
        self._request("DELETE", "/api/v1/tasks/" + self._id(task_id), query={"queue": queue})

    # -- queues -----------------------------------------------------------

    def queues(self):
        """Every queue: dicts with name, paused and counts per state."""
        _, body = self._request("GET", "/api/v1/queues")
        return body["queues"]

    def tasks(self, queue, state="pending", offset=0, limit=50):
        """Tasks of a queue in a state, oldest first."""
        _, body = self._request("GET", "/api/v1/queues/%s/tasks" % urllib.parse.quote(queue, safe=""),
                                query={"state": state, "offset": offset, "limit": limit})
        return body["tasks"]

    def pause(self, queue):
        """Stop workers from taking the queue's tasks."""
        _, body = self._request("POST", "/api/v1/queues/%s/pause" % urllib.parse.quote(queue, safe=""))
        return body

    def resume(self, queue):
        """Undo pause."""
        _, body = self._request("POST", "/api/v1/queues/%s/resume" % urllib.parse.quote(queue, safe=""))
        return body


def _code_status(err):
    return {
        "invalid_argument": 400,
        "duplicate_id": 409,
        "invalid_state": 409,
        "payload_too_large": 413,
        "task_not_found": 404,
        "queue_not_found": 404,
    }.get((err or {}).get("code"), 503)
