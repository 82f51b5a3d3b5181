"""Which targets a job may try, in which order: the route's strategy applied to one job.

Pure: the submit path gives it the queue's state (whether the local queue is too long), and
a random draw for weighted routes, so tests can pin both.
"""

from __future__ import annotations

import random

from imagegate.domain.providers import unsupported
from imagegate.domain.registry import RouteSpec, Target
from imagegate.domain.requests import JobParams
from imagegate.errors import BadRequestError


def _able(target: Target, params: JobParams) -> str | None:
    if target.upstream is None:
        return None
    return unsupported(target.upstream.provider, params)


def plan_targets(
    spec: RouteSpec, params: JobParams, *, spill: bool = False, rng: random.Random | None = None
) -> tuple[int, ...]:
    """Target indices in the order the job tries them; a 400 naming the reason when no
    target of the route can serve ``params``."""
    targets = spec.all_targets
    problems = {t.index: _able(t, params) for t in targets}
    able = [t for t in targets if problems[t.index] is None]
    if not able:
        reasons = "; ".join(p for p in problems.values() if p)
        raise BadRequestError(f"model {spec.route!r} cannot serve this request: {reasons}")
    local = [t for t in able if t.upstream is None]
    upstream = [t for t in able if t.upstream is not None]
    if spec.strategy == "spill":
        ordered = upstream + local if spill and upstream else local + upstream
    elif spec.strategy == "weighted" and len(able) > 1:
        draw = (rng or random).choices(able, weights=[t.weight for t in able])[0]
        ordered = [draw] + [t for t in able if t is not draw]
    else:
        ordered = able
    hops = len(ordered) if spec.max_failovers is None else 1 + spec.max_failovers
    return tuple(t.index for t in ordered[:hops])
