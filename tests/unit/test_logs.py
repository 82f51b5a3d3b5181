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
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield logger
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


def test_a_line_after_stderr_was_swapped_and_closed_goes_to_the_new_stderr(
    imagegate_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a CLI run under a test runner does: stderr is a temporary stream while the
    # command configures logging, and is closed once the command returns.
    during = io.StringIO()
    monkeypatch.setattr(sys, "stderr", during)
    configure_logging("INFO")
    logging.getLogger("imagegate.worker").info("while the command runs")
    during.close()

    after = io.StringIO()
    monkeypatch.setattr(sys, "stderr", after)
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
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    configure_logging("warning")
    logging.getLogger("imagegate.api").info("quiet")
    logging.getLogger("imagegate.api").warning("loud")
    assert "quiet" not in out.getvalue()
    assert "WARNING imagegate.api loud" in out.getvalue()
