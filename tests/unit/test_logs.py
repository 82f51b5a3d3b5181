"""The log handler follows ``sys.stderr`` as it is when a line is logged."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import pytest

from imagegate.logs import configure_logging


@pytest.fixture
def imagegate_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("imagegate")
    handlers, level, propagate = logger.handlers[:], logger.level, logger.propagate
    yield logger
    logger.handlers[:], logger.level, logger.propagate = handlers, level, propagate


def _new_stderr(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    return stream


def test_a_line_after_stderr_was_swapped_and_closed_goes_to_the_new_stderr(
    imagegate_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a CLI run under a test runner does: stderr is a temporary stream while the
    # command configures logging, and is closed once the command returns.
    during = _new_stderr(monkeypatch)
    configure_logging("INFO")
    logging.getLogger("imagegate.worker").info("while the command runs")
    during.close()

    after = _new_stderr(monkeypatch)
    errors: list[object] = []
    monkeypatch.setattr(logging.Handler, "handleError", lambda self, record: errors.append(record))
    logging.getLogger("imagegate.worker").info(
        "model loaded", extra={"prediction_id": "abc", "route": "r/m"}
    )

    assert errors == []
    line = after.getvalue()
    assert "INFO imagegate.worker model loaded prediction_id=abc route=r/m" in line


def test_the_level_filters_lines(
    imagegate_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _new_stderr(monkeypatch)
    configure_logging("warning")
    logging.getLogger("imagegate.api").info("quiet")
    logging.getLogger("imagegate.api").warning("loud")
    assert "quiet" not in out.getvalue()
    assert "WARNING imagegate.api loud" in out.getvalue()
