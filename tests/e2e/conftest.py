"""End-to-end fixtures: REAL ``imagegate serve`` subprocesses on 127.0.0.1.

``make_server`` builds servers for one test, each with its own data directory under
``tmp_path`` on the test's fresh database (the ``database_url`` fixture of tests/conftest.py,
so every e2e test runs on SQLite and, when IMAGEGATE_TEST_POSTGRES_URL is set, on
PostgreSQL); ``kill(sig)`` / ``start()`` / ``restart()`` let a test crash and revive them.
``server`` is one server shared by the tests of a module (per backend), for tests that only
read and submit. Each server's output goes to a log file, printed when the test fails, and
every server is stopped (SIGTERM, then SIGKILL after a timeout) at teardown.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Generator, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.conftest import BACKENDS, fresh_database_url

# Bounds: a slow 2-core CI machine starts the server in a few seconds.
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
KEY_TIMEOUT_S = 60.0

DEFAULT_MODELS = """\
[models."kwaivgi/kling-image-o1"]
backend = "mock"
tasks = ["text-to-image", "image-to-image"]
delay_ms = 0
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def imagegate_command() -> list[str]:
    """The venv's ``imagegate`` console script beside this interpreter, or the same entry
    point through ``python -c`` when the script is not there."""
    script = Path(sys.executable).parent / "imagegate"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from imagegate.cli.main import app; app()"]


class ServerProcess:
    """One ``imagegate serve`` on 127.0.0.1; restartable on the same data dir and database."""

    def __init__(
        self,
        root: Path,
        database_url: str,
        *,
        models: str = DEFAULT_MODELS,
        env: Mapping[str, str] | None = None,
        data_dir: Path | None = None,
        key: str | None = None,
    ) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir or root / "data"
        self.database_url = database_url
        self.models_path = root / "models.toml"
        self.models_path.write_text(models, encoding="utf-8")
        self.log_path = root / "server.log"
        self.port = free_port()
        self.extra_env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._key = key

    # -- configuration ----------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def key(self) -> str:
        if self._key is None:
            self._key = self.create_key("e2e")
        return self._key

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": self.key}

    def environ(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEGATE_")}
        env.update(
            {
                "IMAGEGATE_DATA_DIR": str(self.data_dir),
                "IMAGEGATE_DATABASE_URL": self.database_url,
                "IMAGEGATE_MODELS": str(self.models_path),
                "IMAGEGATE_POLL_INTERVAL_S": "0.05",
                "IMAGEGATE_SHUTDOWN_GRACE_S": "3",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start #{self.starts} on port {self.port} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [*imagegate_command(), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.environ(),
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_healthy()

    def wait_healthy(self, timeout: float = START_TIMEOUT_S) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                pytest.fail(f"imagegate serve exited with {code} on start\n{self.log_text()}")
            try:
                response = httpx.get(f"{self.url}/healthz", timeout=1.0)
                if response.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"imagegate serve not healthy after {timeout}s\n{self.log_text()}")
            time.sleep(0.05)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig``; for SIGKILL/SIGTERM also wait (bounded) until the process is gone."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within the timeout. The exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # in case a test left it stopped
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        return self.proc.returncode

    def restart(self) -> None:
        self.stop()
        self.start()

    # -- CLI --------------------------------------------------------------------------

    def create_key(self, name: str) -> str:
        """``imagegate keys create --name NAME`` in a subprocess; the key is the last line."""
        done = subprocess.run(
            [*imagegate_command(), "keys", "create", "--name", name],
            env=self.environ(),
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=KEY_TIMEOUT_S,
            check=False,
        )
        assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
        lines = [line for line in done.stdout.decode().splitlines() if line.strip()]
        assert lines, f"keys create printed nothing on stdout; stderr: {done.stderr!r}"
        return lines[-1].strip()

    # -- logs ---------------------------------------------------------------------------

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no server log)"

    def log_problems(self) -> list[str]:
        """ERROR / CRITICAL lines and tracebacks in the server log."""
        return [
            line
            for line in self.log_text().splitlines()
            if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback")
        ]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item, so fixtures can tell a failed test."""
    report = yield
    setattr(item, f"e2e_report_{report.when}", report)
    return report


class ServerFactory:
    """Builds servers for one test and stops every one of them at teardown."""

    def __init__(self, tmp_path: Path, database_url: str) -> None:
        self.tmp_path = tmp_path
        self.database_url = database_url
        self.servers: list[ServerProcess] = []

    def __call__(
        self,
        *,
        models: str = DEFAULT_MODELS,
        env: Mapping[str, str] | None = None,
        data_dir: Path | None = None,
        key: str | None = None,
        start: bool = True,
    ) -> ServerProcess:
        """A server on this test's database. To run a second process beside another one on
        the same storage and account, pass that server's ``data_dir`` and ``key``."""
        server = ServerProcess(
            self.tmp_path / f"server{len(self.servers)}",
            self.database_url,
            models=models,
            env=env,
            data_dir=data_dir,
            key=key,
        )
        self.servers.append(server)
        if start:
            server.start()
            assert server.key  # created now, not inside a test's timed section
        return server


@pytest.fixture
def make_server(
    request: pytest.FixtureRequest, tmp_path: Path, database_url: str
) -> Iterator[ServerFactory]:
    factory = ServerFactory(tmp_path, database_url)
    yield factory
    for server in factory.servers:
        server.stop()
    if _failed(request):
        for server in factory.servers:
            print(f"----- {server.log_path} -----\n{server.log_text()}")


@pytest.fixture(scope="module", params=BACKENDS)
def module_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``database_url`` of tests/conftest.py, for one module: a server that many read-only
    tests share starts once per backend instead of once per test."""
    yield from fresh_database_url(request, tmp_path_factory.mktemp("db"), "imagegate_e2e")


@pytest.fixture(scope="module")
def shared_server(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str
) -> Iterator[ServerProcess]:
    """A running server with the default registry (instant mock) and a key, shared by the
    tests of one module."""
    running = ServerProcess(tmp_path_factory.mktemp("server"), module_database_url)
    try:
        running.start()
        assert running.key
        yield running
    finally:
        running.stop()


def _failed(request: pytest.FixtureRequest) -> bool:
    return any(
        getattr(getattr(request.node, f"e2e_report_{when}", None), "failed", False)
        for when in ("setup", "call")
    )


@pytest.fixture
def server(request: pytest.FixtureRequest, shared_server: ServerProcess) -> Iterator[ServerProcess]:
    """The module's shared server; its log is printed when the test fails."""
    yield shared_server
    if _failed(request):
        print(f"----- {shared_server.log_path} -----\n{shared_server.log_text()}")


def sync_images(
    server: ServerProcess, body: dict[str, Any], timeout: float = 90
) -> list[Image.Image]:
    """Submit a sync-mode job to the reference route, insist that it completed, and fetch
    its images."""
    response = httpx.post(
        f"{server.url}/api/v3/kwaivgi/kling-image-o1/text-to-image",
        json={**body, "enable_sync_mode": True},
        headers=server.auth,
        timeout=timeout,
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["status"] == "completed", data
    return [Image.open(io.BytesIO(httpx.get(url, timeout=10).content)) for url in data["outputs"]]
