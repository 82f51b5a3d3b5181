"""``imagegate models list|pull``: what each route serves, and clear answers offline."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from imagegate.cli.main import app


def registry(tmp_path: Path, tiny_sd: Path) -> dict[str, str]:
    models = tmp_path / "models.toml"
    models.write_text(
        f"""
[models."tiny/local"]
backend = "diffusers"
source = "{tiny_sd}"
tasks = ["text-to-image"]
max_batch = 4

[models."stability/turbo"]
backend = "diffusers"
source = "nobody-here/not-downloaded"
tasks = ["text-to-image", "image-to-image"]

[models."test/mock"]
backend = "mock"
tasks = ["text-to-image"]
"""
    )
    return {"IMAGEGATE_MODELS": str(models), "HF_HUB_OFFLINE": "1"}


def run(env: dict[str, str | None], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_models_list_shows_each_route_its_tasks_and_where_its_weights_are(
    tmp_path: Path, tiny_sd: Path
) -> None:
    code, out, err = run(registry(tmp_path, tiny_sd), "models", "list")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == (
        f"tiny/local  backend=diffusers  tasks=text-to-image  max_batch=4  "
        f"{tiny_sd} (local directory)"
    )
    assert lines[1].startswith("stability/turbo  backend=diffusers")
    assert lines[1].endswith("nobody-here/not-downloaded (not downloaded)")
    assert lines[2] == "test/mock  backend=mock  tasks=text-to-image  max_batch=1"


def test_models_list_on_the_shipped_registry_shows_the_bundled_model() -> None:
    code, out, err = run({"HF_HUB_OFFLINE": "1", "IMAGEGATE_MODELS": None}, "models", "list")
    assert code == 0, err
    assert out.splitlines() == [
        "kwaivgi/kling-image-o1  backend=diffusers  tasks=text-to-image,image-to-image  "
        "max_batch=8  builtin:shapes (shipped in the package)"
    ]


def test_pulling_without_the_hub_names_the_route_and_the_source(
    tmp_path: Path, tiny_sd: Path
) -> None:
    code, _, err = run(registry(tmp_path, tiny_sd), "models", "pull", "stability/turbo")
    assert code == 1
    assert "cannot download 'nobody-here/not-downloaded' for route 'stability/turbo'" in err


def test_pulling_a_local_directory_or_a_mock_has_nothing_to_download(
    tmp_path: Path, tiny_sd: Path
) -> None:
    env = registry(tmp_path, tiny_sd)
    code, out, _ = run(env, "models", "pull", "tiny/local")
    assert code == 0 and "local directory; nothing to download" in out
    code, out, _ = run(env, "models", "pull", "test/mock")
    assert code == 0 and "no weights to download" in out
    code, _, err = run(env, "models", "pull", "nobody/x")
    assert code == 1 and "no route 'nobody/x'" in err


def test_a_misspelt_diffusers_option_stops_with_the_entry_named(tmp_path: Path) -> None:
    models = tmp_path / "models.toml"
    models.write_text(
        '[models."a/b"]\nbackend = "diffusers"\nsource = "x/y"\ntasks = ["text-to-image"]\n'
        "stpes = 4\n"
    )
    code, _, err = run({"IMAGEGATE_MODELS": str(models)}, "models", "list")
    assert code == 2
    assert 'models."a/b": stpes: Extra inputs are not permitted' in err


def test_models_list_shows_a_routes_strategy_and_targets(tmp_path: Path) -> None:
    models = tmp_path / "models.toml"
    models.write_text(
        '[models."k/o1"]\ntasks = ["text-to-image"]\nstrategy = "spill"\n'
        '[[models."k/o1".targets]]\nbackend = "mock"\n'
        '[[models."k/o1".targets]]\nbackend = "upstream"\nprovider = "wavespeed"\n'
        'base_url = "https://api.wavespeed.ai"\napi_keys_env = "WS_KEYS_FOR_THIS_TEST"\n'
        'upstream_model = "kwaivgi/kling-image-o1"\n'
    )
    code, out, _ = run({"IMAGEGATE_MODELS": str(models)}, "models", "list")
    assert code == 0
    assert "strategy=spill  targets=local(mock),wavespeed(kwaivgi/kling-image-o1)" in out


def test_a_provider_target_without_keys_is_a_warning_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from imagegate.cli.models import registry_or_exit
    from imagegate.settings import Settings

    models = tmp_path / "models.toml"
    models.write_text(
        '[models."k/o1"]\ntasks = ["text-to-image"]\n'
        '[[models."k/o1".targets]]\nbackend = "upstream"\nprovider = "fal"\n'
        'base_url = "https://queue.fal.run"\napi_keys_env = "FAL_KEYS_UNSET_IN_THIS_TEST"\n'
        'upstream_model = "fal-ai/flux/dev"\n'
    )
    registry_or_exit(Settings(models=models), needs_backends=True)
    assert capsys.readouterr().err == (
        "warning: k/o1: target fal has no API keys: $FAL_KEYS_UNSET_IN_THIS_TEST is unset; "
        "its jobs will go to the next target or fail\n"
    )
