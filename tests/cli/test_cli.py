"""The server-side commands, run in-process through Typer's runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from imagegate.cli.main import app
from tests.unit.test_registry import without


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return {"IMAGEGATE_DATA_DIR": str(tmp_path / "data"), "IMAGEGATE_DATABASE_URL": database_url}


def run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_keys_create_prints_the_key_alone_on_its_last_line(env: dict[str, str]) -> None:
    code, out, err = run(env, "keys", "create", "--name", "ci")
    assert code == 0, err
    key = out.strip().splitlines()[-1]
    assert key.startswith("ig_") and " " not in key
    assert "key id:" in err


def test_keys_list_shows_ids_never_secrets_and_revoke_marks_them(env: dict[str, str]) -> None:
    _, out, _ = run(env, "keys", "create", "--name", "alice")
    key = out.strip().splitlines()[-1]
    key_id, secret = key.split("_")[1], key.split("_", 2)[2]
    code, listing, _ = run(env, "keys", "list")
    assert code == 0
    assert key_id in listing and "alice" in listing and "active" in listing
    assert secret not in listing
    code, out, _ = run(env, "keys", "revoke", key_id)
    assert code == 0 and key_id in out
    assert "revoked" in run(env, "keys", "list")[1]


def test_revoking_an_unknown_key_fails_with_a_message(env: dict[str, str]) -> None:
    code, _, err = run(env, "keys", "revoke", "nope")
    assert code == 1
    assert "not found" in err


def test_keys_create_for_an_unknown_account_fails(env: dict[str, str]) -> None:
    code, _, err = run(env, "keys", "create", "--name", "x", "--account", "missing")
    assert code == 1
    assert "account 'missing' not found" in err


def test_db_upgrade_is_repeatable(env: dict[str, str]) -> None:
    for _ in range(2):
        code, out, err = run(env, "db", "upgrade")
        assert code == 0, err
        assert "latest revision" in out


def test_serve_with_a_bad_registry_stops_naming_file_entry_and_problem(
    env: dict[str, str], tmp_path: Path
) -> None:
    registry = tmp_path / "models.toml"
    registry.write_text('[models."me/model"]\nbackend = "mock"\ntasks = ["paint"]\n')
    code, _, err = run({**env, "IMAGEGATE_MODELS": str(registry)}, "serve", "--port", "1")
    assert code == 2
    assert str(registry) in err and 'models."me/model"' in err and "unknown task 'paint'" in err


@pytest.mark.parametrize("command", [["serve", "--port", "1"], ["worker"]])
def test_serve_and_worker_stop_when_a_routes_backend_is_not_installed(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    registry = tmp_path / "models.toml"
    registry.write_text(
        '[models."me/model"]\nbackend = "diffusers"\ntasks = ["text-to-image"]\nsource = "x/y"\n'
    )
    without(monkeypatch, "torch")
    code, _, err = run({**env, "IMAGEGATE_MODELS": str(registry)}, *command)
    assert code == 2
    assert 'models."me/model": the diffusers backend needs torch' in err
    assert "pip install torch==2.13.0" in err


@pytest.mark.parametrize(
    ("args", "env_value", "expected"),
    [
        ([], None, True),
        ([], "false", False),
        (["--worker"], "false", True),
        (["--no-worker"], None, False),
    ],
)
def test_serve_takes_the_worker_switch_from_the_flag_else_the_environment(
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env_value: str | None,
    expected: bool,
) -> None:
    import uvicorn

    import imagegate.assembly as assembly
    from imagegate.settings import Settings

    seen: list[bool] = []

    def record(settings: Settings) -> object:
        seen.append(settings.run_worker)
        return object()

    monkeypatch.setattr(assembly, "build_app", record)
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: None)
    extra = {"IMAGEGATE_RUN_WORKER": env_value} if env_value else {}
    code, _, err = run({**env, **extra}, "serve", *args)
    assert code == 0, err
    assert seen == [expected]


def test_accounts_create_topup_and_show_keep_balance_and_ledger_equal(
    env: dict[str, str],
) -> None:
    code, out, err = run(env, "accounts", "create", "--name", "acme", "--balance", "1.00")
    assert code == 0, err
    account_id = out.strip().splitlines()[-1]
    assert " " not in account_id and "balance $1.00" in err
    code, out, err = run(env, "accounts", "topup", account_id, "0.028")
    assert code == 0, err
    assert out.strip() == f"{account_id}: balance $1.028"
    code, out, _ = run(env, "accounts", "show", account_id)
    assert code == 0
    assert "balance   $1.028" in out and "ledger    $1.028 in all" in out
    assert "webhooks  signed with whsec_" in out
    assert out.count("topup") == 2


def test_accounts_refuse_amounts_that_are_not_exact_dollars(env: dict[str, str]) -> None:
    code, _, err = run(env, "accounts", "create", "--name", "x", "--balance", "0.0000001")
    assert code == 1 and "finer than a millionth of a dollar" in err
    code, out, _ = run(env, "accounts", "create", "--name", "x", "--balance", "2")
    account_id = out.strip().splitlines()[-1]
    code, _, err = run(env, "accounts", "topup", account_id, "--", "-1")
    assert code == 1 and "must not be negative" in err
    code, _, err = run(env, "accounts", "topup", "missing", "1")
    assert code == 1 and "account 'missing' not found" in err


def test_keys_create_with_scopes_limits_and_expiry(env: dict[str, str]) -> None:
    _, out, _ = run(env, "accounts", "create", "--name", "team", "--max-concurrent", "3")
    account_id = out.strip().splitlines()[-1]
    code, out, err = run(
        env,
        "keys", "create", "--name", "ci", "--account", account_id,
        "--models", "acme/*, kwaivgi/kling-image-o1", "--rate-limit", "10/minute",
        "--expires-in", "30d",
    )  # fmt: skip
    assert code == 0, err
    assert f"account: {account_id}" in err and "expires" in err
    code, listing, _ = run(env, "keys", "list", "--account", account_id)
    assert "models=acme/*,kwaivgi/kling-image-o1" in listing and "until" in listing
    code, _, err = run(env, "keys", "create", "--name", "x", "--rate-limit", "often")
    assert code == 1 and "--rate-limit: 'often' is not a rate limit" in err
    code, _, err = run(env, "keys", "create", "--name", "x", "--expires-in", "soon")
    assert code == 1 and "--expires-in: 'soon' is not a duration" in err
