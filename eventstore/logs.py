"""Logging set-up for entry points (the CLI, ``python -m eventstore.demo``, benchmarks).

Library modules only call ``structlog.get_logger(name)``; nothing is configured
on import. An entry point calls :func:`configure_logging` once: key=value lines
(or JSON lines) on stderr, so stdout stays clean for command output.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

__all__ = ["configure_logging"]


def configure_logging(level: int = logging.WARNING, fmt: Literal["text", "json"] = "text") -> None:
    """Send structlog output to stderr at ``level``, as text (key=value) or JSON lines."""
    renderer: structlog.typing.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
