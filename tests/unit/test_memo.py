from __future__ import annotations

from imagegate.services.memo import BoundedMemo


def test_memo_keeps_the_first_value_and_evicts_the_oldest_at_its_limit() -> None:
    memo: BoundedMemo[str, int] = BoundedMemo(2)
    assert memo.put("a", 1) == 1
    assert memo.put("a", 9) == 1  # values never go stale, so the first one stays
    memo.put("b", 2)
    memo.put("c", 3)
    assert memo.get("a") is None
    assert (memo.get("b"), memo.get("c")) == (2, 3)
