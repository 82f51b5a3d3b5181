"""``plan_targets``: the order a job tries a route's targets in, and which targets are left
out because their provider cannot serve the request (``providers.unsupported``)."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagegate.domain.providers import CAPABILITIES, UpstreamOptions, unsupported
from imagegate.domain.registry import RouteSpec, Target
from imagegate.domain.requests import JobParams
from imagegate.domain.routing import plan_targets
from imagegate.errors import BadRequestError

PARAMS = JobParams(
    prompt="a lighthouse", n=1, aspect_ratio="1:1", resolution="1k", seed=7, width=64, height=64
)


def params(**changes: object) -> JobParams:
    data = {**PARAMS.to_json(), **changes}
    return JobParams.from_json(data)


def local(index: int, weight: float = 1.0) -> Target:
    return Target(index, "mock", "local", weight)


def remote(index: int, provider: str, weight: float = 1.0, name: str | None = None) -> Target:
    options = UpstreamOptions.model_validate(
        {
            "provider": provider,
            "base_url": "https://api.example.com",
            "api_keys_env": "KEYS",
            "upstream_model": "vendor/model",
        }
    )
    return Target(index, "upstream", name or provider, weight, options)


def route(
    *targets: Target, strategy: str = "failover", max_failovers: int | None = None
) -> RouteSpec:
    local_target = next((t for t in targets if t.upstream is None), None)
    return RouteSpec(
        route="r/x",
        backend=local_target.backend if local_target else "upstream",
        tasks=("text-to-image",),
        targets=targets,
        strategy=strategy,
        max_failovers=max_failovers,
    )


# --- providers.unsupported ---------------------------------------------------------------


def test_every_provider_serves_a_plain_request() -> None:
    for provider in CAPABILITIES:
        assert unsupported(provider, PARAMS) is None


def test_openai_refuses_a_seed_the_client_chose() -> None:
    assert unsupported("openai", params(seed_given=True)) == (
        "seed: openai takes no seed, so it cannot repeat an image"
    )
    # A seed the server drew itself is no promise, so it does not matter.
    assert unsupported("openai", params(seed_given=False)) is None


def test_openai_refuses_a_negative_prompt() -> None:
    assert unsupported("openai", params(negative_prompt="blur")) == (
        "negative_prompt: openai takes no negative prompt"
    )
    assert unsupported("openai", params(negative_prompt="")) is None


@pytest.mark.parametrize("provider", sorted(CAPABILITIES))
def test_n_above_a_providers_max_is_refused_and_at_the_max_is_served(provider: str) -> None:
    max_n = CAPABILITIES[provider].max_n
    assert unsupported(provider, params(n=max_n)) is None
    assert unsupported(provider, params(n=max_n + 1)) == (
        f"n: {provider} makes at most {max_n} images a request"
    )


def test_providers_that_take_seeds_and_negative_prompts_accept_both() -> None:
    both = params(seed_given=True, negative_prompt="blur", images=("https://x/y.png",))
    for provider in ("wavespeed", "gptproto", "imagegate", "fal", "replicate"):
        assert unsupported(provider, both) is None


# --- strategies --------------------------------------------------------------------------


def test_failover_keeps_the_registry_order() -> None:
    spec = route(remote(0, "fal"), local(1), remote(2, "wavespeed"))
    assert plan_targets(spec, PARAMS) == (0, 1, 2)


def test_a_route_without_targets_plans_its_one_local_target() -> None:
    spec = RouteSpec(route="r/x", backend="mock", tasks=("text-to-image",))
    assert plan_targets(spec, PARAMS) == (0,)


def test_spill_tries_the_local_target_first_while_the_queue_is_short() -> None:
    spec = route(remote(0, "fal"), remote(1, "wavespeed"), local(2), strategy="spill")
    assert plan_targets(spec, PARAMS, spill=False) == (2, 0, 1)


def test_spill_sends_to_the_upstreams_first_and_local_last_when_spilling() -> None:
    spec = route(local(0), remote(1, "fal"), remote(2, "wavespeed"), strategy="spill")
    assert plan_targets(spec, PARAMS, spill=True) == (1, 2, 0)


def test_spill_stays_local_when_no_upstream_can_serve_the_request() -> None:
    spec = route(local(0), remote(1, "openai"), strategy="spill")
    assert plan_targets(spec, params(seed_given=True), spill=True) == (0,)


def test_weighted_draws_the_first_target_in_proportion_to_the_weights() -> None:
    spec = route(
        remote(0, "fal", weight=1),
        local(1, weight=3),
        remote(2, "wavespeed", weight=6),
        strategy="weighted",
    )
    rng = random.Random(1234)
    draws = 2000
    firsts = Counter(plan_targets(spec, PARAMS, rng=rng)[0] for _ in range(draws))
    for index, share in ((0, 0.1), (1, 0.3), (2, 0.6)):
        assert abs(firsts[index] / draws - share) < 0.05, firsts


def test_weighted_puts_the_rest_after_the_draw_in_registry_order() -> None:
    spec = route(
        remote(0, "fal"),
        local(1),
        remote(2, "wavespeed"),
        remote(3, "replicate"),
        strategy="weighted",
    )
    rng = random.Random(99)
    seen = set()
    for _ in range(200):
        plan = plan_targets(spec, PARAMS, rng=rng)
        first, rest = plan[0], list(plan[1:])
        assert rest == [i for i in (0, 1, 2, 3) if i != first]
        seen.add(first)
    assert seen == {0, 1, 2, 3}


def test_weighted_with_a_seeded_rng_is_repeatable() -> None:
    spec = route(remote(0, "fal"), remote(1, "wavespeed"), local(2), strategy="weighted")
    first = [plan_targets(spec, PARAMS, rng=random.Random(5)) for _ in range(3)]
    assert first[0] == first[1] == first[2]


def test_weighted_draws_only_among_targets_that_can_serve_the_request() -> None:
    spec = route(remote(0, "openai", weight=1000), local(1), remote(2, "fal"), strategy="weighted")
    rng = random.Random(3)
    for _ in range(50):
        assert 0 not in plan_targets(spec, params(negative_prompt="blur"), rng=rng)


@pytest.mark.parametrize(
    ("max_failovers", "expected"), [(0, (0,)), (1, (0, 1)), (2, (0, 1, 2)), (9, (0, 1, 2))]
)
def test_max_failovers_caps_the_targets_after_the_first(
    max_failovers: int, expected: tuple[int, ...]
) -> None:
    spec = route(local(0), remote(1, "fal"), remote(2, "wavespeed"), max_failovers=max_failovers)
    assert plan_targets(spec, PARAMS) == expected


def test_max_failovers_counts_after_unable_targets_are_left_out() -> None:
    spec = route(remote(0, "openai"), remote(1, "fal"), local(2), max_failovers=1)
    assert plan_targets(spec, params(seed_given=True)) == (1, 2)


# --- targets that cannot serve the request -----------------------------------------------


def test_a_provider_that_cannot_serve_the_request_is_left_out() -> None:
    spec = route(remote(0, "openai"), remote(1, "fal"), local(2))
    assert plan_targets(spec, params(seed_given=True)) == (1, 2)
    assert plan_targets(spec, params(negative_prompt="blur")) == (1, 2)


def test_n_above_a_providers_max_leaves_that_provider_out() -> None:
    spec = route(remote(0, "fal"), remote(1, "wavespeed"), remote(2, "openai"))
    assert plan_targets(spec, params(n=5)) == (1, 2)
    assert plan_targets(spec, params(n=10)) == (2,)


def test_the_local_target_serves_whatever_the_providers_cannot() -> None:
    spec = route(remote(0, "openai"), local(1))
    assert plan_targets(spec, params(n=11, seed_given=True, negative_prompt="x")) == (1,)


def test_no_target_able_is_a_bad_request_naming_the_reasons() -> None:
    spec = route(remote(0, "openai"), remote(1, "fal"))
    with pytest.raises(BadRequestError) as info:
        plan_targets(spec, params(n=5, seed_given=True))
    message = info.value.message
    assert message.startswith("model 'r/x' cannot serve this request: ")
    assert "seed: openai takes no seed" in message
    assert "n: fal makes at most 4 images a request" in message
    assert info.value.http_status == 400


# --- the property ------------------------------------------------------------------------

PROVIDERS = sorted(CAPABILITIES)


@st.composite
def routes(draw: st.DrawFn) -> RouteSpec:
    count = draw(st.integers(1, 4))
    local_at = draw(st.none() | st.integers(0, count - 1))
    targets = []
    for index in range(count):
        weight = draw(st.floats(0.1, 10))
        if index == local_at:
            targets.append(local(index, weight))
        else:
            targets.append(remote(index, draw(st.sampled_from(PROVIDERS)), weight))
    has_local = local_at is not None
    strategies = ["failover", "weighted"] + (["spill"] if has_local and count > 1 else [])
    return route(
        *targets,
        strategy=draw(st.sampled_from(strategies)),
        max_failovers=draw(st.none() | st.integers(0, 4)),
    )


job_params = st.builds(
    JobParams,
    prompt=st.just("p"),
    n=st.integers(1, 12),
    aspect_ratio=st.just("1:1"),
    resolution=st.sampled_from(["1k", "2k"]),
    seed=st.integers(0, 2**31),
    width=st.just(64),
    height=st.just(64),
    negative_prompt=st.none() | st.sampled_from(["", "blur"]),
    seed_given=st.booleans(),
)


@given(spec=routes(), job=job_params, spill=st.booleans(), seed=st.integers(0, 2**32))
def test_a_plan_holds_each_able_target_once_up_to_the_failover_cap(
    spec: RouteSpec, job: JobParams, spill: bool, seed: int
) -> None:
    able = {
        t.index
        for t in spec.all_targets
        if t.upstream is None or unsupported(t.upstream.provider, job) is None
    }
    if not able:
        with pytest.raises(BadRequestError):
            plan_targets(spec, job, spill=spill, rng=random.Random(seed))
        return
    plan = plan_targets(spec, job, spill=spill, rng=random.Random(seed))
    assert plan
    assert len(set(plan)) == len(plan)
    assert set(plan) <= able
    cap = len(able) if spec.max_failovers is None else 1 + spec.max_failovers
    assert len(plan) == min(len(able), cap)


def test_references_past_a_providers_limit_are_refused_not_cut_short() -> None:
    two = params(images=("refs/a.png", "refs/b.png"))
    assert unsupported("replicate", two) == ("images: replicate takes at most 1 reference image(s)")
    assert unsupported("replicate", params(images=("refs/a.png",))) is None
    assert unsupported("fal", two) is None
