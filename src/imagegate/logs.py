"""Log lines as ``time level logger message key=value…``, with the prediction id on every
line about a job (passed as ``extra={"prediction_id": …}`` or by a LoggerAdapter)."""

from __future__ import annotations

import logging

_CONTEXT_KEYS = ("prediction_id", "route", "correlation_id")


class ContextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(
            f"{key}={getattr(record, key)}" for key in _CONTEXT_KEYS if hasattr(record, key)
        )
        return f"{line} {context}" if context else line


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(ContextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger("imagegate")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
