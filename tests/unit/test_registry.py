from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from imagegate.domain.diffusers_options import DiffusersOptions
from imagegate.domain.registry import (
    RegistryError,
    check_installed,
    load_registry,
    parse_registry,
)
from imagegate.errors import NotFoundError


def test_the_shipped_registry_serves_the_reference_route_from_the_bundled_model() -> None:
    registry = load_registry()
    spec = registry.lookup("kwaivgi/kling-image-o1", "text-to-image")
    assert spec.backend == "diffusers"
    options = DiffusersOptions.model_validate(spec.options)
    assert options.source == "builtin:shapes"
    weights = options.local_directory()
    assert weights is not None and (weights / "model_index.json").is_file()
    on_disk = sum(f.stat().st_size for f in weights.rglob("*") if f.is_file())
    assert on_disk < 50 * 2**20  # the cap for weights shipped in the package


def test_unknown_route_and_task_are_not_found() -> None:
    registry = load_registry()
    with pytest.raises(NotFoundError, match="nobody/x"):
        registry.lookup("nobody/x", "text-to-image")
    with pytest.raises(NotFoundError, match="edit"):
        registry.lookup("kwaivgi/kling-image-o1", "edit")


DIFFUSERS = '[models."a/b"]\nbackend = "diffusers"\ntasks = ["text-to-image"]\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[models", "not valid TOML"),
        ("x = 1", "no [models"),
        ('[models."a/b"]\ntasks = ["text-to-image"]', 'models."a/b": backend: Field required'),
        ('[models."a/b"]\nbackend = "mock"\ntasks = []', 'models."a/b": tasks'),
        ('[models."a/b"]\nbackend = "mock"\ntasks = ["paint"]', "unknown task 'paint'"),
        ('[models."a/b"]\nbackend = "nope"\ntasks = ["text-to-image"]', "unknown backend 'nope'"),
        ('[models."a/b"]\nbackend = "mock"\ntasks = ["text-to-image"]\ndelay_ms = -1', "delay_ms"),
        ('[models."nocolon"]\nbackend = "mock"\ntasks = ["text-to-image"]', "owner/name"),
        ('[models."a/b"]\nbackend = "mock"\ntasks = ["text-to-image"]\nmax_batch = 0', "max_batch"),
        (DIFFUSERS, 'models."a/b": source: Field required'),
        (DIFFUSERS + 'source = "x/y"\nrender_scale = 0', "render_scale: Input should be greater"),
        (
            DIFFUSERS + 'source = "x/y"\nrender_scale = 0.5\nrender_pixels = 4096',
            "render_scale or render_pixels, not both",
        ),
        (DIFFUSERS + 'source = "x/y"\ndevice = "gpu"', "device: String should match pattern"),
        (DIFFUSERS + 'source = "x/y"\ndtype = "int8"', "dtype: Input should be 'auto'"),
        (DIFFUSERS + 'source = "x/y"\nsteps = 0', "steps: Input should be greater"),
    ],
)
def test_bad_registry_names_file_entry_and_problem(text: str, expected: str) -> None:
    with pytest.raises(RegistryError) as info:
        parse_registry(text, "/etc/imagegate/models.toml")
    message = str(info.value)
    assert message.startswith("/etc/imagegate/models.toml")
    assert expected in message


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match=r"missing\.toml: cannot be read"):
        load_registry(tmp_path / "missing.toml")


def test_custom_backend_path_and_extra_options_are_kept() -> None:
    registry = parse_registry(
        '[models."me/m"]\nbackend = "pkg.mod:Cls"\ntasks = ["text-to-image"]\nsteps = 4\n', "f"
    )
    spec = registry.routes["me/m"]
    assert spec.backend_path == "pkg.mod:Cls"
    assert spec.options == {"steps": 4}


def test_a_diffusers_entry_keeps_its_options_and_batch_size() -> None:
    registry = parse_registry(
        DIFFUSERS + 'source = "stabilityai/sd-turbo"\nsteps = 4\nmax_batch = 4\nwarm = true\n', "f"
    )
    spec = registry.routes["a/b"]
    assert spec.backend_path == "imagegate.backends.diffusers:DiffusersBackend"
    assert (spec.max_batch, spec.warm) == (4, True)
    assert spec.options == {"source": "stabilityai/sd-turbo", "steps": 4}


def test_only_image_tasks_of_a_diffusers_route_take_references() -> None:
    spec = parse_registry(DIFFUSERS + 'source = "x/y"\n', "f").routes["a/b"]
    assert not spec.takes_references("text-to-image")
    assert spec.takes_references("image-to-image") and spec.takes_references("edit")
    mock = parse_registry('[models."a/b"]\nbackend = "mock"\ntasks = ["text-to-image"]', "f")
    assert mock.routes["a/b"].takes_references("text-to-image")


def test_a_builtin_source_names_weights_shipped_in_the_package(tmp_path: Path) -> None:
    from imagegate.domain.diffusers_options import DiffusersOptions

    builtin = DiffusersOptions(source="builtin:shapes").local_directory()
    assert builtin is not None and builtin.parts[-3:] == ("imagegate", "weights", "shapes")
    assert DiffusersOptions(source=str(tmp_path)).local_directory() == tmp_path
    assert DiffusersOptions(source="stabilityai/sd-turbo").local_directory() is None


def without(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    """Make ``package`` look uninstalled to the registry's check."""
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *rest: None if name == package else real(name)
    )


def test_a_backend_whose_packages_are_missing_is_refused_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = parse_registry(DIFFUSERS + 'source = "x/y"\n', "/etc/imagegate/models.toml")
    check_installed(registry)  # everything is installed here
    without(monkeypatch, "diffusers")
    with pytest.raises(RegistryError) as info:
        check_installed(registry)
    assert str(info.value) == (
        '/etc/imagegate/models.toml: models."a/b": the diffusers backend needs diffusers, '
        'which are not installed: pip install torch==2.13.0 && pip install "imagegate[diffusers]"'
    )


def test_the_mock_backend_needs_nothing_more(monkeypatch: pytest.MonkeyPatch) -> None:
    without(monkeypatch, "torch")
    check_installed(parse_registry('[models."a/b"]\nbackend = "mock"\ntasks = ["edit"]', "x"))
