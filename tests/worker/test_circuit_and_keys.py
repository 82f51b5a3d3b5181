"""The upstream worker's guards: the circuit breaker per target (``worker.circuit``) and the
pool of a provider's API keys (``worker.key_pool``). Time is a fake clock; waiting is on
events, bounded by ``fail_after``."""

from __future__ import annotations

import itertools

import anyio
import pytest
from prometheus_client import REGISTRY

from imagegate.worker import circuit
from imagegate.worker.circuit import CircuitBreaker
from imagegate.worker.key_pool import KeyPool, NoUsableKey, fingerprint

pytestmark = pytest.mark.anyio
_names = itertools.count()


def unique(prefix: str) -> str:
    """A label value no other test uses: the metrics live in the process-wide registry."""
    return f"{prefix}{next(_names)}"


class FakeClock:
    """Stands in for the ``time`` module inside ``worker.circuit``."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(circuit, "time", fake)
    return fake


def breaker(failures: int = 3, cooldown_s: float = 30.0) -> CircuitBreaker:
    return CircuitBreaker(unique("r/"), "fal", failures, cooldown_s)


def gauge(b: CircuitBreaker) -> float | None:
    return REGISTRY.get_sample_value(
        "imagegate_upstream_circuit_open", {"route": b.route, "target": b.target}
    )


def open_circuit(b: CircuitBreaker) -> None:
    for _ in range(b.threshold):
        assert b.allows()
        b.failed()
    assert not b.allows()


# --- the circuit breaker -----------------------------------------------------------------


def test_the_circuit_stays_closed_below_the_failure_threshold(clock: FakeClock) -> None:
    b = breaker(failures=3)
    b.failed()
    b.failed()
    assert b.allows()
    assert b.allows()  # closed: every caller gets through
    assert gauge(b) is None  # never opened, never reported


def test_the_threshold_of_failures_in_a_row_opens_the_circuit(clock: FakeClock) -> None:
    b = breaker(failures=3)
    b.failed()
    b.failed()
    b.failed()
    assert not b.allows()
    assert gauge(b) == 1.0


def test_a_success_resets_the_count_of_failures_in_a_row(clock: FakeClock) -> None:
    b = breaker(failures=3)
    b.failed()
    b.failed()
    b.succeeded()
    b.failed()
    b.failed()
    assert b.allows()
    b.failed()
    assert not b.allows()


def test_an_open_circuit_refuses_until_the_cooldown_has_passed(clock: FakeClock) -> None:
    b = breaker(failures=1, cooldown_s=30)
    open_circuit(b)
    clock.advance(29.9)
    assert not b.allows()
    assert not b.allows()
    clock.advance(0.1)
    assert b.allows()


def test_after_the_cooldown_exactly_one_trial_goes_through(clock: FakeClock) -> None:
    b = breaker(failures=2, cooldown_s=10)
    open_circuit(b)
    clock.advance(10)
    assert b.allows()  # the trial
    assert not b.allows()  # a second caller while the trial runs
    clock.advance(5)
    assert not b.allows()  # still waiting on the trial
    assert gauge(b) == 1.0


def test_the_trials_success_closes_the_circuit(clock: FakeClock) -> None:
    b = breaker(failures=2, cooldown_s=10)
    open_circuit(b)
    clock.advance(10)
    assert b.allows()
    b.succeeded()
    assert gauge(b) == 0.0
    assert b.allows() and b.allows()
    # Closed again means a fresh count: one failure does not reopen a threshold of two.
    b.failed()
    assert b.allows()


def test_the_trials_failure_opens_the_circuit_for_another_cooldown(clock: FakeClock) -> None:
    b = breaker(failures=5, cooldown_s=10)
    open_circuit(b)
    clock.advance(10)
    assert b.allows()
    b.failed()  # one failure is enough while half-open
    assert gauge(b) == 1.0
    assert not b.allows()
    clock.advance(9.9)
    assert not b.allows()
    clock.advance(0.1)
    assert b.allows()  # the next trial
    assert not b.allows()


def test_failures_while_open_do_not_extend_the_cooldown(clock: FakeClock) -> None:
    b = breaker(failures=1, cooldown_s=10)
    open_circuit(b)
    clock.advance(5)
    b.failed()  # a job sent before the circuit opened, failing late
    clock.advance(5)
    assert b.allows()


def test_a_trial_that_never_reports_back_does_not_keep_the_circuit_open_forever(
    clock: FakeClock,
) -> None:
    # The worker reports only successes and "transient"/"failed" errors: a trial job that
    # ends otherwise (the key refused, a 400, a lost submit, a cancel) reports nothing.
    # After another cooldown a new trial must be let through, or the target is shut out
    # until the worker restarts.
    b = breaker(failures=1, cooldown_s=10)
    open_circuit(b)
    clock.advance(10)
    assert b.allows()  # the trial, which then never reports
    clock.advance(10)
    assert b.allows()


def test_each_route_and_target_has_its_own_gauge(clock: FakeClock) -> None:
    first, second = breaker(failures=1), breaker(failures=1)
    first.failed()
    assert gauge(first) == 1.0
    assert gauge(second) is None
    second.succeeded()
    assert gauge(second) == 0.0
    assert gauge(first) == 1.0


# --- the key pool ------------------------------------------------------------------------


def pool(monkeypatch: pytest.MonkeyPatch, value: str | None, per_key: int = 2) -> KeyPool:
    env = unique("IMAGEGATE_TEST_KEYS_")
    if value is not None:
        monkeypatch.setenv(env, value)
    return KeyPool(env, per_key)


def disabled_count(p: KeyPool, key: str) -> float | None:
    return REGISTRY.get_sample_value(
        "imagegate_upstream_keys_disabled_total", {"env": p.env, "fingerprint": fingerprint(key)}
    )


def test_keys_come_from_the_env_var_with_blanks_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    p = pool(monkeypatch, " k1 ,, k2,  ,k3,")
    assert p.keys == ["k1", "k2", "k3"]
    assert p.usable() == ["k1", "k2", "k3"]


async def test_acquire_takes_the_least_used_usable_key(monkeypatch: pytest.MonkeyPatch) -> None:
    p = pool(monkeypatch, "k1,k2,k3", per_key=5)
    assert [await p.acquire() for _ in range(4)] == ["k1", "k2", "k3", "k1"]
    p.release("k2")
    p.release("k3")
    assert await p.acquire() == "k2"
    p.disable("k3", "revoked")
    assert await p.acquire() == "k2"
    assert await p.acquire() == "k1"  # tie at 2 each: the first in the list
    assert p.in_use == {"k1": 3, "k2": 2, "k3": 0}


async def test_at_the_cap_acquire_waits_for_a_release(monkeypatch: pytest.MonkeyPatch) -> None:
    p = pool(monkeypatch, "k1", per_key=1)
    assert await p.acquire() == "k1"
    got: list[str] = []
    waiting = anyio.Event()

    async def waiter() -> None:
        waiting.set()
        got.append(await p.acquire())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(waiter)
            await waiting.wait()
            await anyio.wait_all_tasks_blocked()
            assert got == []  # blocked at the cap
            p.release("k1")
    assert got == ["k1"]
    assert p.in_use == {"k1": 1}


async def test_a_disabled_key_is_not_handed_out_after_its_release(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p = pool(monkeypatch, "k1,k2", per_key=1)
    assert {await p.acquire(), await p.acquire()} == {"k1", "k2"}
    got: list[str] = []

    async def waiter() -> None:
        got.append(await p.acquire())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
            assert got == []
            # k2's job ends because the provider refused k2: the waiter gets k1 once freed.
            p.disable("k2", "401 revoked")
            p.release("k2")
            await anyio.wait_all_tasks_blocked()
            assert got == []
            p.release("k1")
    assert got == ["k1"]


async def test_disabling_the_last_key_fails_the_waiters(monkeypatch: pytest.MonkeyPatch) -> None:
    p = pool(monkeypatch, "k1", per_key=1)
    await p.acquire()
    errors: list[NoUsableKey] = []

    async def waiter() -> None:
        try:
            await p.acquire()
        except NoUsableKey as exc:
            errors.append(exc)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
            p.disable("k1", "out of credit")
    assert len(errors) == 1
    assert f"${p.env}" in str(errors[0])


def test_disable_takes_the_key_out_and_counts_it_once(monkeypatch: pytest.MonkeyPatch) -> None:
    p = pool(monkeypatch, "k1,k2")
    assert disabled_count(p, "k1") is None
    p.disable("k1", "401 revoked")
    p.disable("k1", "401 again")
    assert p.usable() == ["k2"]
    assert p.disabled == {"k1": "401 revoked"}
    assert disabled_count(p, "k1") == 1.0
    assert disabled_count(p, "k2") is None


async def test_with_every_key_disabled_acquire_names_the_env_var(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p = pool(monkeypatch, "k1,k2")
    p.disable("k1", "revoked")
    p.disable("k2", "no credit")
    with pytest.raises(NoUsableKey) as info:
        await p.acquire()
    assert str(info.value) == f"no usable API key in ${p.env} (2 taken out)"


@pytest.mark.parametrize("value", [None, "", " , ,"])
async def test_an_unset_or_blank_env_var_has_no_usable_key(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    p = pool(monkeypatch, value)
    assert p.keys == []
    with pytest.raises(NoUsableKey) as info:
        await p.acquire()
    assert str(info.value) == f"no usable API key in ${p.env} (unset)"


def test_by_fingerprint_finds_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    p = pool(monkeypatch, "k1,k2")
    assert p.by_fingerprint(fingerprint("k2")) == "k2"
    assert p.by_fingerprint(fingerprint("k3")) is None
    assert p.by_fingerprint(None) is None


def test_a_fingerprint_is_short_stable_and_hides_the_key() -> None:
    value = fingerprint("sk-secret-123")
    assert value == fingerprint("sk-secret-123")
    assert len(value) == 12 and "secret" not in value
    assert value != fingerprint("sk-secret-124")
