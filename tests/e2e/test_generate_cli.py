"""`imagegate generate`, `upload` and `predictions` against a real server: files with
predictable names, --json for scripts, an exit code per kind of failure, and live progress
in a terminal (a pseudo-terminal here)."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.e2e.conftest import DEFAULT_MODELS, ServerFactory, ServerProcess, imagegate_command

pytestmark = pytest.mark.e2e
SLOW = DEFAULT_MODELS.replace("delay_ms = 0", "delay_ms = 2500")


def cli(
    server: ServerProcess, *args: str, key: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("IMAGEGATE_")},
        "IMAGEGATE_BASE_URL": server.url,
        "IMAGEGATE_API_KEY": key or server.key,
    }
    return subprocess.run(
        [*imagegate_command(), *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_generate_saves_files_prints_paths_and_reports_json(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    server = make_server()
    out = tmp_path / "out"
    done = cli(server, "generate", "a red circle", "--n", "2", "--aspect-ratio", "1:1",
               "--seed", "7", "-o", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    paths = done.stdout.split()
    assert len(paths) == 2 and [Path(p).parent for p in paths] == [out, out]
    prediction_id = Path(paths[0]).stem.rsplit("-", 1)[0]
    assert [Path(p).name for p in paths] == [f"{prediction_id}-0.png", f"{prediction_id}-1.png"]
    with Image.open(paths[0]) as image:
        assert image.size == (1024, 1024)

    reference = tmp_path / "ref.png"
    Image.new("RGB", (100, 200), (9, 9, 9)).save(reference)
    done = cli(server, "generate", "like this", "--image", str(reference), "--aspect-ratio",
               "auto", "--json", "-o", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["code"] == 200 and body["data"]["status"] == "completed"
    with Image.open(body["files"][0]) as image:
        assert image.size == (768, 1360)  # 9:16, the nearest to the reference's 1:2

    listed = cli(server, "predictions", "list", "--limit", "5")
    assert listed.returncode == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()] == [
        body["data"]["id"],
        prediction_id,
    ]
    got = cli(server, "predictions", "get", prediction_id)
    assert got.stdout.startswith(f"{prediction_id}  completed") and got.stdout.count("http") == 2
    uploaded = cli(server, "upload", str(reference))
    assert uploaded.returncode == 0 and "/api/v3/media/" in uploaded.stdout


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_each_failure_has_its_exit_code(make_server: ServerFactory) -> None:
    server = make_server(models=SLOW)
    assert cli(server, "generate", "p", key="ig_bad_key").returncode == 3
    assert cli(server, "generate", "p", "--model", "no/such").returncode == 5
    bad = cli(server, "generate", "p", "--resolution", "4k", "--json")
    assert bad.returncode == 6 and json.loads(bad.stdout)["code"] == 400
    blocked = cli(server, "generate", "a nude portrait", "--json")
    assert blocked.returncode == 8 and json.loads(blocked.stdout)["code"] == 503
    nowhere = subprocess.run(
        [*imagegate_command(), "generate", "p", "--base-url", "http://127.0.0.1:9",
         "--api-key", "k"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert nowhere.returncode == 10
    started = cli(server, "generate", "p", "--json")
    assert started.returncode == 0
    job = json.loads(started.stdout)["data"]["id"]
    cancel = cli(server, "predictions", "cancel", job)
    assert cancel.returncode == 6  # it has already ended: a 400


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_generate_shows_live_progress_in_a_terminal(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    server = make_server(models=SLOW)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("IMAGEGATE_")},
        "IMAGEGATE_BASE_URL": server.url,
        "IMAGEGATE_API_KEY": server.key,
        "COLUMNS": "100",
        "TERM": "xterm-256color",
    }
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [*imagegate_command(), "generate", "a slow circle", "-o", str(tmp_path)],
        env=env, stdin=child, stdout=child, stderr=child, close_fds=True,
    )  # fmt: skip
    os.close(child)
    seen = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(main, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    os.close(main)
    assert proc.wait(timeout=10) == 0, seen.decode(errors="replace")
    text = seen.decode(errors="replace")
    assert "processing" in text  # the status, live
    assert "/8" in text or "/20" in text or "━" in text  # the denoising steps' bar
    assert any(line.strip().endswith(".png") for line in text.splitlines())
