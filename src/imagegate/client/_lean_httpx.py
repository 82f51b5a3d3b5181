"""Loads httpx without its command-line tool; imported first by ``imagegate.client``.

httpx's package ``__init__`` imports its CLI (``httpx._main``) whenever click and rich are
installed, which they are for imagegate's own CLI: about 90 ms of click, rich and pygments
on every ``import imagegate.client``, for a tool the SDK never calls. Marking the module
absent while httpx first loads sends httpx down its own fallback for a missing CLI. The mark
is removed at once, so ``import httpx._main`` still works afterwards, and the ``httpx``
console script, a process of its own, is untouched.
"""

import sys

if "httpx" not in sys.modules:
    sys.modules["httpx._main"] = None  # type: ignore[assignment]
    try:
        import httpx  # noqa: F401
    finally:
        del sys.modules["httpx._main"]
