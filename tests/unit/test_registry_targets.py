"""The registry's ``targets``: a route served by its own model, by upstream providers, or both,
and the strategy that orders them. Every refusal names the file, the route and the rule."""

from __future__ import annotations

import pytest

from imagegate.domain.registry import Registry, RegistryError, RouteSpec, parse_registry

PATH = "/etc/imagegate/models.toml"
HEAD = '[models."r/x"]\ntasks = ["text-to-image"]\n'
LOCAL = '[[models."r/x".targets]]\nbackend = "mock"\n'


def upstream(provider: str = "fal", **extra: object) -> str:
    """One ``backend = "upstream"`` target table, with ``extra`` options appended."""
    lines = [
        '[[models."r/x".targets]]',
        'backend = "upstream"',
        f'provider = "{provider}"',
        'base_url = "https://api.example.com"',
        'api_keys_env = "EXAMPLE_KEYS"',
        'upstream_model = "vendor/model"',
    ]
    for name, value in extra.items():
        lines.append(f"{name} = {value!r}".replace("'", '"'))
    return "\n".join(lines) + "\n"


def parse(text: str) -> Registry:
    return parse_registry(text, PATH)


def route(text: str) -> RouteSpec:
    return parse(text).routes["r/x"]


def refusal(text: str) -> str:
    with pytest.raises(RegistryError) as info:
        parse(text)
    message = str(info.value)
    assert message.startswith(f'{PATH}: models."r/x": '), message
    return message


# --- what parses -------------------------------------------------------------------------


def test_a_single_backend_entry_is_one_local_target() -> None:
    spec = route('[models."r/x"]\nbackend = "mock"\ntasks = ["text-to-image"]\ndelay_ms = 5\n')
    assert spec.backend == "mock"
    assert spec.delay_ms == 5
    assert [(t.index, t.backend, t.name, t.lane) for t in spec.all_targets] == [
        (0, "mock", "local", "local")
    ]
    assert spec.local_target is spec.all_targets[0]
    assert spec.lanes == ["local"]
    assert spec.strategy == "failover"
    assert spec.max_failovers is None


def test_a_route_spec_built_without_targets_still_has_its_local_target() -> None:
    spec = RouteSpec(route="r/x", backend="mock", tasks=("text-to-image",))
    assert [(t.index, t.backend, t.name) for t in spec.all_targets] == [(0, "mock", "local")]
    assert spec.local_target is not None and spec.local_target.name == "local"
    assert spec.lanes == ["local"]


def test_targets_keep_the_registry_order_with_their_lanes() -> None:
    spec = route(HEAD + upstream("wavespeed") + LOCAL + upstream("openai"))
    assert [t.index for t in spec.targets] == [0, 1, 2]
    assert [t.name for t in spec.targets] == ["wavespeed", "local", "openai"]
    assert spec.lanes == ["upstream", "local", "upstream"]
    assert spec.local_target is spec.targets[1]
    assert spec.all_targets == spec.targets


def test_the_local_target_gives_the_route_its_backend_and_options() -> None:
    spec = route(
        HEAD
        + upstream()
        + '[[models."r/x".targets]]\nbackend = "mock"\ndelay_ms = 7\nmax_batch = 4\n'
        + "warm = true\nweight = 2.5\nflavour = 3\n"
    )
    assert spec.backend == "mock"
    assert (spec.delay_ms, spec.max_batch, spec.warm) == (7, 4, True)
    # The scheduling fields are the route's; only the backend's own options stay options.
    assert spec.options == {"flavour": 3}
    assert spec.local_target is not None and spec.local_target.weight == 2.5


def test_an_upstream_only_route_has_no_local_target_and_backend_upstream() -> None:
    spec = route(HEAD + upstream("wavespeed"))
    assert spec.backend == "upstream"
    assert spec.local_target is None
    assert spec.lanes == ["upstream"]
    assert spec.options == {}


def test_an_upstream_target_carries_its_options_and_cost() -> None:
    spec = route(
        HEAD
        + upstream(
            "replicate", cost="0.0125", max_concurrent_per_key=7, weight=3, circuit_failures=2
        )
    )
    (target,) = spec.targets
    assert target.backend == "upstream"
    assert target.name == "replicate"
    assert target.weight == 3
    assert target.upstream is not None
    assert target.upstream.provider == "replicate"
    assert target.upstream.base_url == "https://api.example.com"
    assert target.upstream.api_keys_env == "EXAMPLE_KEYS"
    assert target.upstream.upstream_model == "vendor/model"
    assert target.upstream.max_concurrent_per_key == 7
    assert target.upstream.circuit_failures == 2
    assert target.cost_micros == 12_500


def test_a_local_target_costs_nothing() -> None:
    spec = route(HEAD + LOCAL + upstream(cost=0.02))
    assert [t.cost_micros for t in spec.targets] == [0, 20_000]


def test_targets_of_the_same_provider_are_numbered_from_the_second() -> None:
    spec = route(HEAD + upstream("fal") + LOCAL + upstream("fal") + upstream("fal"))
    assert [t.name for t in spec.targets] == ["fal", "local", "fal#2", "fal#3"]


def test_strategy_spill_after_and_max_failovers_are_read() -> None:
    spec = route(
        '[models."r/x"]\ntasks = ["text-to-image"]\nstrategy = "spill"\n'
        "spill_after_s = 4.5\nmax_failovers = 1\n" + LOCAL + upstream()
    )
    assert (spec.strategy, spec.spill_after_s, spec.max_failovers) == ("spill", 4.5, 1)


def test_the_defaults_are_failover_twenty_seconds_and_no_failover_cap() -> None:
    spec = route(HEAD + upstream())
    assert (spec.strategy, spec.spill_after_s, spec.max_failovers) == ("failover", 20.0, None)


def test_weighted_routes_keep_each_targets_weight() -> None:
    spec = route(
        '[models."r/x"]\ntasks = ["text-to-image"]\nstrategy = "weighted"\n'
        + upstream("fal", weight=3)
        + upstream("replicate", weight=0.5)
    )
    assert spec.strategy == "weighted"
    assert [t.weight for t in spec.targets] == [3, 0.5]


def test_has_upstream_says_whether_any_route_uses_a_provider() -> None:
    local_only = parse('[models."a/b"]\nbackend = "mock"\ntasks = ["text-to-image"]\n')
    assert local_only.has_upstream is False
    mixed = parse(
        '[models."a/b"]\nbackend = "mock"\ntasks = ["text-to-image"]\n' + HEAD + upstream()
    )
    assert mixed.has_upstream is True


# --- what is refused ---------------------------------------------------------------------


def test_two_local_targets_are_refused_naming_the_route() -> None:
    message = refusal(HEAD + LOCAL + upstream() + LOCAL)
    assert "at most one local" in message


@pytest.mark.parametrize(
    "targets",
    [LOCAL, upstream(), upstream("fal") + upstream("openai")],
    ids=["local-only", "upstream-only", "two-upstreams"],
)
def test_spill_needs_a_local_and_an_upstream_target(targets: str) -> None:
    message = refusal(HEAD + 'strategy = "spill"\n' + targets)
    assert 'strategy "spill" needs a local target and an upstream one' in message


def test_spill_with_a_local_and_an_upstream_target_parses() -> None:
    assert route(HEAD + 'strategy = "spill"\n' + upstream() + LOCAL).strategy == "spill"


def test_backend_beside_targets_is_refused() -> None:
    message = refusal(HEAD + 'backend = "mock"\n' + upstream())
    assert "backend: set it in each target, not beside targets" in message


def test_an_empty_targets_list_is_refused() -> None:
    assert "targets: at least one" in refusal(HEAD + "targets = []\n")


def test_an_entry_with_neither_backend_nor_targets_is_refused() -> None:
    assert "backend: Field required" in refusal(HEAD)


@pytest.mark.parametrize("field", ["provider", "base_url", "api_keys_env", "upstream_model"])
def test_an_upstream_target_missing_a_field_names_the_target_and_field(field: str) -> None:
    text = "".join(
        line + "\n" for line in upstream().splitlines() if not line.startswith(f"{field} =")
    )
    message = refusal(HEAD + LOCAL + text)
    assert f"targets[1]: {field}: Field required" in message


def test_an_unknown_upstream_option_is_refused_naming_it() -> None:
    message = refusal(HEAD + LOCAL + upstream(colour="blue"))
    assert "targets[1]: colour: Extra inputs are not permitted" in message


def test_an_unknown_provider_is_refused_listing_the_known_ones() -> None:
    message = refusal(HEAD + upstream("acme"))
    assert "targets[0]: provider: Input should be" in message
    for known in ("wavespeed", "gptproto", "imagegate", "fal", "replicate", "openai"):
        assert f"'{known}'" in message


@pytest.mark.parametrize(
    ("option", "value", "problem"),
    [
        ("base_url", "ftp://example.com", "base_url: String should match pattern"),
        ("api_keys_env", "NOT-A-NAME", "api_keys_env: String should match pattern"),
        ("upstream_model", "", "upstream_model: String should have at least 1 character"),
        ("max_concurrent_per_key", 0, "max_concurrent_per_key: Input should be greater"),
        ("circuit_cooldown_s", 0, "circuit_cooldown_s: Input should be greater than 0"),
        ("weight", 0, "weight: Input should be greater than 0"),
    ],
)
def test_a_bad_upstream_option_names_the_target_and_option(
    option: str, value: object, problem: str
) -> None:
    text = "\n".join(line for line in upstream().splitlines() if not line.startswith(f"{option} ="))
    message = refusal(HEAD + f"{text}\n{option} = {value!r}\n".replace("'", '"'))
    assert f"targets[0]: {problem}" in message


@pytest.mark.parametrize(
    ("cost", "problem"),
    [
        ('"-1"', "'-1' must not be negative"),
        ('"abc"', "'abc' is not an amount in dollars"),
        ("0.0000001", "finer than a millionth of a dollar"),
    ],
)
def test_an_invalid_cost_is_refused(cost: str, problem: str) -> None:
    message = refusal(HEAD + upstream() + f"cost = {cost}\n")
    assert "targets[0]: cost: " in message
    assert problem in message


def test_a_boolean_cost_is_refused_not_read_as_one_dollar() -> None:
    # ``parse_usd`` refuses booleans, but only if the option reaches it as one.
    message = refusal(HEAD + upstream() + "cost = true\n")
    assert "targets[0]: cost" in message


def test_an_unknown_local_backend_in_targets_names_the_target() -> None:
    message = refusal(HEAD + upstream() + '[[models."r/x".targets]]\nbackend = "nope"\n')
    assert "targets[1]: unknown backend 'nope'" in message


def test_a_diffusers_target_is_checked_like_a_diffusers_entry() -> None:
    message = refusal(HEAD + '[[models."r/x".targets]]\nbackend = "diffusers"\n')
    assert "targets[0]: source: Field required" in message


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('strategy = "random"', "strategy: Input should be 'failover', 'spill' or 'weighted'"),
        ("max_failovers = -1", "max_failovers: Input should be greater than or equal to 0"),
        ("spill_after_s = -0.5", "spill_after_s: Input should be greater than or equal to 0"),
    ],
)
def test_bad_route_level_routing_options_are_refused(line: str, problem: str) -> None:
    assert problem in refusal(HEAD + line + "\n" + upstream())


def test_an_upstream_target_can_name_another_model_for_a_task() -> None:
    spec = parse_registry(
        '[models."r/x"]\ntasks = ["text-to-image", "image-to-image"]\n'
        '[[models."r/x".targets]]\nbackend = "upstream"\nprovider = "fal"\n'
        'base_url = "https://queue.fal.run"\napi_keys_env = "FAL_KEYS"\n'
        'upstream_model = "fal-ai/flux/dev"\n'
        'task_models = { "image-to-image" = "fal-ai/flux/dev/image-to-image" }\n',
        "models.toml",
    ).routes["r/x"]
    options = spec.all_targets[0].upstream
    assert options is not None
    assert options.model_for("text-to-image") == "fal-ai/flux/dev"
    assert options.model_for("image-to-image") == "fal-ai/flux/dev/image-to-image"


def test_task_models_for_an_unknown_task_are_refused() -> None:
    with pytest.raises(RegistryError, match=r"targets\[0\]: task_models: unknown task 'paint'"):
        parse_registry(
            '[models."r/x"]\ntasks = ["text-to-image"]\n'
            '[[models."r/x".targets]]\nbackend = "upstream"\nprovider = "fal"\n'
            'base_url = "https://queue.fal.run"\napi_keys_env = "FAL_KEYS"\n'
            'upstream_model = "a/b"\ntask_models = { "paint" = "a/c" }\n',
            "models.toml",
        )
