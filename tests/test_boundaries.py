"""Architecture rules that a reviewer would otherwise have to remember."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_api_app_and_wire_do_not_import_torch_and_start_fast() -> None:
    code = (
        "import sys, time; t = time.perf_counter();"
        "import imagegate.assembly, imagegate.wire, imagegate.cli.main;"
        "elapsed = time.perf_counter() - t;"
        "heavy = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules];"
        "print(heavy, elapsed)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[0] == "[]", out


def test_import_layers_hold() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint), str(ROOT / "pyproject.toml")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_is_clean() -> None:
    ruff = Path(sys.executable).parent / "ruff"
    for args in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [str(ruff), *args, "src", "tests", "benchmarks"],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(ROOT / ".mypy_cache")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_sdk_imports_no_server_code() -> None:
    # click, rich and pygments are installed (imagegate's CLI uses them) and httpx would
    # import them for its own CLI; the SDK loads httpx without it (client/_lean_httpx.py).
    code = (
        "import sys; import imagegate.client;"
        "heavy = [m for m in ('torch', 'sqlalchemy', 'fastapi', 'imagegate.settings',"
        " 'imagegate.services', 'PIL', 'click', 'rich', 'pygments') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]", out


def test_httpx_stays_whole_after_the_sdk_loaded_it_lean() -> None:
    code = (
        "import imagegate.client, httpx, httpx._main, click;"
        "print(isinstance(httpx._main.main, click.Command), httpx.Client.__name__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["True", "Client"], out
