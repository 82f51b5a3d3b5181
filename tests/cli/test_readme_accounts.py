"""The README's accounts block, run as a user pastes it, against a fresh data directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def accounts_block() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Accounts, keys, prices and limits") :]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


def test_the_readme_accounts_commands_run_and_do_what_they_say(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "IMAGEGATE_DATA_DIR": str(tmp_path / "data"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    env.pop("IMAGEGATE_DATABASE_URL", None)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", accounts_block()],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "balance $7.50" in out  # the top-up
    assert "balance   $7.50" in out and "ledger    $7.50 in all" in out  # accounts show
    assert "4 unfinished jobs at once, rate 60/minute" in out
    assert "models=acme/*" in out and "until" in out  # keys list
    assert re.search(r"^revoked \w+$", out, re.M)
