from __future__ import annotations

from pathlib import Path

import pytest

from imagegate.domain.registry import RegistryError, load_registry, parse_registry
from imagegate.errors import NotFoundError


def test_the_shipped_registry_serves_the_reference_route() -> None:
    registry = load_registry()
    spec = registry.lookup("kwaivgi/kling-image-o1", "text-to-image")
    assert spec.backend == "mock"
    assert spec.backend_path == "imagegate.backends.mock:MockBackend"


def test_unknown_route_and_task_are_not_found() -> None:
    registry = load_registry()
    with pytest.raises(NotFoundError, match="nobody/x"):
        registry.lookup("nobody/x", "text-to-image")
    with pytest.raises(NotFoundError, match="edit"):
        registry.lookup("kwaivgi/kling-image-o1", "edit")


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
