"""How long ``import imagegate.client`` takes in a fresh interpreter (issue 8: < 300 ms).

Each run is a new ``python`` process. It reports the import alone (timed inside the
process), the whole ``python -c "import imagegate.client"`` (start-up included) and a bare
``python -c pass`` beside it, and which heavy modules came with the import.

    python benchmarks/sdk_import.py --runs 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

PROBE = """
import json, sys, time
started = time.perf_counter()
import imagegate.client
elapsed = time.perf_counter() - started
loaded = [m for m in ("torch", "fastapi", "sqlalchemy", "click", "rich", "pygments")
          if m in sys.modules]
print(json.dumps({"ms": elapsed * 1000, "loaded": loaded}))
"""


def _median(values: list[float]) -> str:
    middle = statistics.median(values)
    return f"median {middle:.0f} ms (best {min(values):.0f}, worst {max(values):.0f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    imports: list[float] = []
    processes: list[float] = []
    bare: list[float] = []
    loaded: list[str] = []
    for _ in range(args.runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
        ).stdout
        processes.append((time.perf_counter() - started) * 1000)
        result = json.loads(out)
        imports.append(result["ms"])
        loaded = result["loaded"]
    print(f"{args.runs} fresh interpreters, {sys.executable}")
    print(f"  import imagegate.client alone:        {_median(imports)}")
    print(f"  python -c 'import imagegate.client':  {_median(processes)}")
    print(f"  python -c 'pass':                     {_median(bare)}")
    print(f"  heavy modules imported with it: {', '.join(loaded) or 'none'}")


if __name__ == "__main__":
    main()
