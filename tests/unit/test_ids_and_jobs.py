from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from imagegate.domain.ids import (
    hash_secret,
    new_api_key,
    new_prediction_id,
    parse_api_key,
    secret_matches,
)
from imagegate.domain.jobs import ALLOWED, TERMINAL, JobStatus, can_move


def test_prediction_ids_are_url_safe_and_ordered_by_time() -> None:
    early, late = new_prediction_id(now_ms=1_000), new_prediction_id(now_ms=2_000)
    assert re.fullmatch(r"[0-9a-f]{32}", early)
    assert early < late


def test_api_key_round_trip_and_hash_only_storage() -> None:
    parts = new_api_key()
    parsed = parse_api_key(parts.token)
    assert parsed == parts
    stored = hash_secret(parts.secret)
    assert parts.secret not in stored
    assert secret_matches(parts.secret, stored)
    assert not secret_matches(parts.secret + "x", stored)


@given(st.text())
def test_parse_api_key_never_raises(token: str) -> None:
    parsed = parse_api_key(token)
    if parsed is not None:
        assert parsed.token == token


def test_terminal_states_are_final() -> None:
    for status in TERMINAL:
        assert ALLOWED[status] == frozenset()
        assert not any(can_move(status, target) for target in JobStatus)


def test_jobs_move_forward_only_except_a_lapsed_lease() -> None:
    assert can_move(JobStatus.CREATED, JobStatus.PROCESSING)
    assert can_move(JobStatus.PROCESSING, JobStatus.COMPLETED)
    assert can_move(JobStatus.PROCESSING, JobStatus.CREATED)
    assert not can_move(JobStatus.CREATED, JobStatus.COMPLETED)
