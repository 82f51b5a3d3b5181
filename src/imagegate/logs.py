"""Log lines as ``time level logger message key=value…``, with the prediction id on every
line about a job (passed as ``extra={"prediction_id": …}`` or by a LoggerAdapter)."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

_CONTEXT_KEYS = ("prediction_id", "route", "correlation_id")


class ContextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(
            f"{key}={getattr(record, key)}" for key in _CONTEXT_KEYS if hasattr(record, key)
        )
        return f"{line} {context}" if context else line


class CurrentStderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is when a line is logged, not when the handler was
    made: a CLI run under a test runner (or any caller that swaps stderr for a while) would
    otherwise leave the handler holding a stream that is closed by the time the next line
    comes, and every later line would print a "Logging error" traceback instead."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _stream: TextIO) -> None:
        pass  # always the current sys.stderr


def configure_logging(level: str = "INFO") -> None:
    handler = CurrentStderrHandler()
    handler.setFormatter(ContextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger("imagegate")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
