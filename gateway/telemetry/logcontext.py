"""Request id / trace id on every log record, and the request id itself.

The request id is the caller's ``x-request-id`` when it is a short printable token, else a
process-unique id (random prefix + counter: no per-request randomness). It is kept in a context
variable for the request's task (stage tasks inherit it) and added, with the current trace and
span ids, to every record by :class:`ContextFilter` (the JSON formatter prints them).
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
from contextvars import ContextVar

from opentelemetry import trace

REQUEST_ID: ContextVar[str | None] = ContextVar("mpr_request_id", default=None)

_PREFIX = secrets.token_hex(4)
_COUNTER = itertools.count(1)
_MAX_INBOUND = 128


def _reseed() -> None:
    """A forked process (``serve --workers N``) gets its own prefix: ids stay unique per server."""
    global _PREFIX, _COUNTER
    _PREFIX = secrets.token_hex(4)
    _COUNTER = itertools.count(1)


os.register_at_fork(after_in_child=_reseed)


def new_request_id() -> str:
    return f"{_PREFIX}-{next(_COUNTER):x}"


def accept_request_id(value: bytes | None) -> str:
    """The caller's id when usable (≤128 printable ASCII, no spaces), else a new one."""
    if value and len(value) <= _MAX_INBOUND:
        try:
            text = value.decode("ascii")
        except UnicodeDecodeError:
            return new_request_id()
        if text.isprintable() and " " not in text:
            return text
    return new_request_id()


class ContextFilter(logging.Filter):
    """Adds ``request_id``, ``trace_id`` and ``span_id`` to records that happen inside a request/span."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = REQUEST_ID.get()
        if rid is not None and not hasattr(record, "request_id"):
            record.request_id = rid
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid and not hasattr(record, "trace_id"):
            record.trace_id = format(ctx.trace_id, "032x")
            record.span_id = format(ctx.span_id, "016x")
        return True


def install_filter(handler: logging.Handler) -> None:
    if not any(isinstance(f, ContextFilter) for f in handler.filters):
        handler.addFilter(ContextFilter())
