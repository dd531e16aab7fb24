"""Backwards-compatible name of the conq HTTP client: ``from conq_client
import Client, TaskFailed`` keeps working. New code: ``import conq`` and
``conq.Client`` / ``conq.connect``."""

from conq._client import (  # noqa: F401
    APIError as ConqError,
    AuthError,
    BadRequestError,
    BatchError,
    Client,
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    ServerUnavailable,
)
from conq._errors import TaskFailed  # noqa: F401

__all__ = ["Client", "ConqError", "BadRequestError", "AuthError", "NotFoundError", "ConflictError",
           "PayloadTooLargeError", "ServerUnavailable", "BatchError", "TaskFailed"]
