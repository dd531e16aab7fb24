"""conq.current(): what the running task is (from the call's META)."""

from __future__ import annotations

import contextvars
import datetime
import re
from typing import Any, Mapping, Optional

__all__ = ["TaskContext", "current"]


class TaskContext(object):
    """The running attempt: ``id`` (the queue task's id), ``kind``,
    ``queue``, ``attempt`` (1-based), ``max_retries``, ``deadline`` (an
    aware datetime the attempt must end by, or None) and ``encoding`` of
    the payload (raw, json or args). Fields the caller did not send (a
    plain process-pool call) are None."""

    __slots__ = ("id", "kind", "queue", "attempt", "max_retries", "_deadline", "_deadline_text", "encoding")

    def __init__(self, id: Optional[str] = None, kind: Optional[str] = None, queue: Optional[str] = None,  # noqa: A002
                 attempt: Optional[int] = None, max_retries: Optional[int] = None,
                 deadline: Optional[datetime.datetime] = None, encoding: Optional[str] = None) -> None:
        self.id = id
        self.kind = kind
        self.queue = queue
        self.attempt = attempt
        self.max_retries = max_retries
        self._deadline = deadline
        self._deadline_text = None
        self.encoding = encoding

    @property
    def deadline(self) -> Optional[datetime.datetime]:
        # Parsed on first use: most tasks never look, and every call has one.
        t = self._deadline_text
        if t is not None:
            self._deadline = parse_time(t)
            self._deadline_text = None
        return self._deadline

    @deadline.setter
    def deadline(self, value: Optional[datetime.datetime]) -> None:
        self._deadline, self._deadline_text = value, None

    @classmethod
    def from_meta(cls, meta: Optional[Mapping[str, Any]], name: Optional[str] = None) -> "TaskContext":
        # Once per call: the fields set directly, not through __init__'s
        # keywords, and the deadline parsed only when there is one.
        self = cls.__new__(cls)
        if meta:
            get = meta.get
            self.id = get("task_id")
            self.kind = get("kind") or name
            self.queue = get("queue")
            self.attempt = get("attempt")
            self.max_retries = get("max_retries")
            d = get("deadline")
            self._deadline = None
            self._deadline_text = d if d else None
            self.encoding = get("encoding")
        else:
            self.id = self.queue = self.attempt = self.max_retries = self._deadline = self._deadline_text = self.encoding = None
            self.kind = name
        return self

    def remaining(self) -> Optional[float]:
        """Seconds left before the deadline (None without one)."""
        if self.deadline is None:
            return None
        return (self.deadline - datetime.datetime.now(datetime.timezone.utc)).total_seconds()

    def __repr__(self) -> str:
        fields = ("id", "kind", "queue", "attempt", "max_retries", "deadline", "encoding")
        return "TaskContext(%s)" % ", ".join("%s=%r" % (k, getattr(self, k)) for k in fields)


_current: "contextvars.ContextVar[Optional[TaskContext]]" = contextvars.ContextVar("conq_current", default=None)


def current() -> TaskContext:
    """The running task's context. A contextvar, so it is right in threads
    and asyncio tasks started by the SDK. Raises RuntimeError outside a
    task."""
    c = _current.get()
    if c is None:
        raise RuntimeError("conq.current() called outside a conq task")
    return c


_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def parse_time(s: Any) -> Optional[datetime.datetime]:
    """RFC 3339 with up to nanoseconds (Go's format) -> aware datetime.
    Python 3.9's fromisoformat takes neither 'Z' nor 9 fraction digits."""
    if not isinstance(s, str) or not s:
        return None
    m = _RFC3339.match(s)
    if not m:
        return None
    frac = (m.group(2) or ".0")[1:7].ljust(6, "0")
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    try:
        return datetime.datetime.fromisoformat("%s.%s%s" % (m.group(1), frac, tz))
    except ValueError:
        return None
