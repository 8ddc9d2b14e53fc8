"""Logging: quiet library loggers, and the set-up entry points call.

Library modules get their logger from :func:`get_logger`: a structlog logger
that hands every event to the standard library's ``logging.getLogger(name)``
(names under ``eventstore`` and ``projections``) and configures nothing
globally, so the application embedding the library decides where logs go. An
application that configures nothing sees no output on stdout, ever; Python's
last-resort handler shows warnings and errors on stderr, info is dropped.

An entry point (the CLI, ``python -m eventstore.demo``, benchmarks) calls
:func:`configure_logging` once: key=value lines (or JSON lines) on stderr, so
stdout stays clean for command output.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Any, Literal, TextIO

import structlog

__all__ = [
    "LIBRARY_FIELDS",
    "LogOutput",
    "child_log_arguments",
    "configure_logging",
    "configured_output",
    "get_logger",
]

#: The ``LogRecord`` attribute holding a library event's name and fields, for formatters.
LIBRARY_FIELDS = "metaledger"
_CALL_KWARGS = ("exc_info", "stack_info", "stacklevel")
#: The handler configure_logging installed, replaced on the next call.
_handler: logging.Handler | None = None


@dataclass(frozen=True, slots=True)
class LogOutput:
    """Where and how :func:`configure_logging` sends lines: for writers of their own."""

    level: int
    fmt: Literal["text", "json"]
    stream: TextIO


#: What the last configure_logging call set up (None: nothing configured here).
_output: LogOutput | None = None


def configured_output() -> LogOutput | None:
    """The level, format and stream :func:`configure_logging` set, if it was called.

    A hot path (the server's access log) renders its own lines in the same
    format and writes them to the same stream in batches, instead of paying
    for ``logging`` and structlog per line.
    """
    if _handler is None or logging.getLogger().handlers[-1:] != [_handler]:
        return None  # someone configured logging after us: go through logging
    return _output


def child_log_arguments() -> list[str]:
    """``--log-level`` and ``--log-format`` for a child process to log as this one does.

    The server's children (the views follower, the log writer) take them, so
    their lines join the server's on its stderr in its format and at its level.
    """
    output = configured_output()
    level = output.level if output is not None else logging.WARNING
    fmt = output.fmt if output is not None else "text"
    return ["--log-level", str(level), "--log-format", fmt]


def _to_stdlib(_: Any, __: str, event_dict: structlog.typing.EventDict) -> Any:
    """The last processor: positional and keyword arguments of a ``logging`` call.

    The message reads well under any plain ``logging`` formatter (``store_created
    path='/x'``); the fields also ride on the record (attribute ``metaledger``)
    for structured formatters, such as the one :func:`configure_logging` sets.
    """
    call = {kw: event_dict.pop(kw) for kw in _CALL_KWARGS if kw in event_dict}
    event = str(event_dict.pop("event", ""))
    text = " ".join([event, *(f"{key}={value!r}" for key, value in event_dict.items())])
    return ("%s", text), {**call, "extra": {LIBRARY_FIELDS: {"event": event, **event_dict}}}


def get_logger(name: str) -> Any:
    """A library logger sending to ``logging.getLogger(name)``; nothing is configured."""
    return structlog.wrap_logger(
        logging.getLogger(name),
        processors=[structlog.contextvars.merge_contextvars, _to_stdlib],
        wrapper_class=structlog.stdlib.BoundLogger,
    )


def _library_fields(_: Any, __: str, event_dict: structlog.typing.EventDict) -> Any:
    """Turn a library record back into its event name and fields."""
    record = event_dict.get("_record")
    fields = getattr(record, LIBRARY_FIELDS, None)
    if isinstance(fields, dict):
        event_dict.update(fields)
    return event_dict


def configure_logging(level: int = logging.WARNING, fmt: Literal["text", "json"] = "text") -> None:
    """Send every log (the library's and structlog's) to stderr at ``level``.

    For entry points only: it sets a handler on the root logger (replacing the
    one an earlier call set) and configures structlog globally.
    """
    global _handler, _output
    renderer: structlog.typing.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[_library_fields, *shared],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    root.addHandler(handler)
    root.setLevel(level)
    _handler = handler
    _output = LogOutput(level, fmt, sys.stderr)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
