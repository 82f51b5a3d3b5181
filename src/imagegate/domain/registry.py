"""The model registry: which routes exist, which tasks they take, which backend runs them.

Loaded from TOML once at start. Every problem is reported with the file, the entry and
the rule, because a server that starts with a half-read registry is worse than one that
refuses to start.
"""

from __future__ import annotations

import importlib.util
import re
import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from imagegate.domain.diffusers_options import DiffusersOptions
from imagegate.domain.pricing import AmountError, DollarField, job_price, parse_usd
from imagegate.domain.providers import UpstreamOptions, check_cost
from imagegate.errors import NotFoundError

TASKS = ("text-to-image", "image-to-image", "edit")
# Names of the backends that ship; anything else must be a "package.module:Class" path.
BUILTIN_BACKENDS: dict[str, str] = {
    "mock": "imagegate.backends.mock:MockBackend",
    "diffusers": "imagegate.backends.diffusers:DiffusersBackend",
}
# What each shipped backend imports beyond imagegate's own dependencies, and how to get it.
BACKEND_PACKAGES: dict[str, tuple[tuple[str, ...], str]] = {
    "diffusers": (
        ("torch", "diffusers", "transformers"),
        'pip install torch==2.13.0 && pip install "imagegate[diffusers]"',
    ),
}
UPSTREAM = "upstream"
_ROUTE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class RegistryError(Exception):
    def __init__(self, path: Path | str, entry: str | None, problem: str) -> None:
        where = f'{path}: models."{entry}"' if entry else str(path)
        super().__init__(f"{where}: {problem}")


class _TargetEntry(BaseModel):
    """What one target of a route says: its backend and that backend's own options."""

    model_config = ConfigDict(extra="allow")

    backend: str
    delay_ms: int = Field(default=0, ge=0)
    # Images per model call: concurrent compatible jobs are merged up to this many.
    max_batch: int = Field(default=1, ge=1, le=64)
    # Load the model when the worker starts instead of on its first job.
    warm: bool = False
    # "weighted" routes send each job to a target drawn in proportion to these.
    weight: float = Field(default=1.0, gt=0)


class _Entry(BaseModel):
    model_config = ConfigDict(extra="allow")

    tasks: list[str] = Field(min_length=1)
    # Dollars per image at 1k and at 2k (2k defaults to the 1k price); checked as exact
    # decimals by ``pricing.parse_usd``, so any float, int or text is accepted here.
    price: DollarField = 0
    price_2k: DollarField | None = None
    # What a prompt the policy forbids, or an output the image check finds unsafe, does:
    # "block" fails it (400/503, never stored, refunded); "flag" lets it through, marked.
    safety: Literal["block", "flag"] = "block"
    strategy: Literal["failover", "spill", "weighted"] = "failover"
    spill_after_s: float = Field(default=20.0, ge=0)
    # Targets a job may move on to after the first fails (default: all of them).
    max_failovers: int | None = Field(default=None, ge=0)
    targets: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class Target:
    """Where a route's jobs can run: the worker's own model, or an upstream provider."""

    index: int
    backend: str
    name: str  # for logs and the usage report: "local", or "wavespeed", "fal#2", ...
    weight: float = 1.0
    upstream: UpstreamOptions | None = None

    @property
    def lane(self) -> str:
        """Which workers take the job: the model slots, or the upstream pool."""
        return "upstream" if self.upstream is not None else "local"

    @property
    def cost_micros(self) -> int:
        return 0 if self.upstream is None else self.upstream.cost_micros


@dataclass(frozen=True)
class RouteSpec:
    route: str
    backend: str
    tasks: tuple[str, ...]
    delay_ms: int = 0
    max_batch: int = 1
    warm: bool = False
    price_micros: int = 0
    price_2k_micros: int = 0
    safety: str = "block"
    options: dict[str, Any] = field(default_factory=dict)
    # Every target, in the registry's order; ``backend`` and ``options`` above are the
    # local one's (a route has at most one), or "upstream" for a provider-only route.
    targets: tuple[Target, ...] = ()
    strategy: str = "failover"
    spill_after_s: float = 20.0
    max_failovers: int | None = None

    @property
    def backend_path(self) -> str:
        return BUILTIN_BACKENDS.get(self.backend, self.backend)

    @property
    def local_target(self) -> Target | None:
        return next((t for t in self.all_targets if t.upstream is None), None)

    @property
    def all_targets(self) -> tuple[Target, ...]:
        return self.targets or (Target(0, self.backend, "local"),)

    @property
    def lanes(self) -> list[str]:
        return [t.lane for t in self.all_targets]

    def price_of(self, resolution: str, n: int) -> int:
        """The job's price in micro-dollars."""
        return job_price(self.price_micros, self.price_2k_micros, resolution, n)

    def takes_references(self, task: str) -> bool:
        # A diffusers text-to-image pipeline has no input for reference images; the
        # image-conditioned tasks of a route run its image-to-image pipeline instead.
        return task != "text-to-image" or self.backend != "diffusers"


@dataclass(frozen=True)
class Registry:
    routes: dict[str, RouteSpec]
    source: str = ""

    def lookup(self, route: str, task: str) -> RouteSpec:
        spec = self.routes.get(route)
        if spec is None:
            raise NotFoundError(f"model {route!r} not found")
        if task not in spec.tasks:
            raise NotFoundError(
                f"task {task!r} not found for model {route!r}; it serves: {', '.join(spec.tasks)}"
            )
        return spec

    @property
    def has_upstream(self) -> bool:
        return any(t.upstream for spec in self.routes.values() for t in spec.all_targets)


def default_registry_path() -> Path:
    return Path(str(resources.files("imagegate").joinpath("models.toml")))


def _first_problem(error: ValidationError) -> str:
    item = error.errors()[0]
    where = ".".join(str(p) for p in item["loc"])
    return f"{where}: {item['msg']}" if where else item["msg"]


def _parse_target(path: Path | str, route: str, index: int, raw: Any, where: str) -> Target:
    if not isinstance(raw, dict):
        raise RegistryError(path, route, f"{where}must be a table")
    try:
        entry = _TargetEntry.model_validate(raw)
    except ValidationError as exc:
        raise RegistryError(path, route, where + _first_problem(exc)) from exc
    options = dict(entry.model_extra or {})
    if entry.backend == UPSTREAM:
        try:
            upstream = UpstreamOptions.model_validate(options)
        except ValidationError as exc:
            raise RegistryError(path, route, where + _first_problem(exc)) from exc
        if (problem := check_cost(upstream)) is not None:
            raise RegistryError(path, route, where + problem)
        for task in upstream.task_models:
            if task not in TASKS:
                raise RegistryError(
                    path,
                    route,
                    f"{where}task_models: unknown task {task!r}; known: " + ", ".join(TASKS),
                )
        return Target(index, UPSTREAM, upstream.provider, entry.weight, upstream)
    if entry.backend not in BUILTIN_BACKENDS and not _IMPORT_PATH.match(entry.backend):
        raise RegistryError(
            path,
            route,
            f"{where}unknown backend {entry.backend!r}; use {', '.join(BUILTIN_BACKENDS)}, "
            f"{UPSTREAM} or a 'package.module:Class' path",
        )
    if entry.backend == "diffusers":
        try:
            DiffusersOptions.model_validate(options)
        except ValidationError as exc:
            raise RegistryError(path, route, where + _first_problem(exc)) from exc
    return Target(index, entry.backend, "local", entry.weight)


def _named(targets: list[Target]) -> tuple[Target, ...]:
    """Give targets that share a name (two fal targets) a number: "fal", "fal#2"."""
    seen: dict[str, int] = {}
    named = []
    for target in targets:
        seen[target.name] = seen.get(target.name, 0) + 1
        if seen[target.name] > 1:
            target = replace(target, name=f"{target.name}#{seen[target.name]}")
        named.append(target)
    return tuple(named)


def _route_spec(path: Path | str, route: str, raw: dict[str, Any]) -> RouteSpec:
    try:
        entry = _Entry.model_validate(raw)
    except ValidationError as exc:
        raise RegistryError(path, route, _first_problem(exc)) from exc
    unknown = [t for t in entry.tasks if t not in TASKS]
    if unknown:
        raise RegistryError(path, route, f"unknown task {unknown[0]!r}; known: {', '.join(TASKS)}")
    try:
        price = parse_usd(entry.price)
    except AmountError as exc:
        raise RegistryError(path, route, f"price: {exc}") from exc
    try:
        price_2k = price if entry.price_2k is None else parse_usd(entry.price_2k)
    except AmountError as exc:
        raise RegistryError(path, route, f"price_2k: {exc}") from exc
    extra = dict(entry.model_extra or {})
    if entry.targets is None:
        # One target: the entry's own backend and options.
        if "backend" not in extra:
            raise RegistryError(path, route, "backend: Field required (or a [[targets]] list)")
        raws: list[Any] = [extra]
    else:
        if "backend" in extra:
            raise RegistryError(path, route, "backend: set it in each target, not beside targets")
        if not entry.targets:
            raise RegistryError(path, route, "targets: at least one")
        raws = list(entry.targets)
    targets = [
        _parse_target(path, route, i, r, f"targets[{i}]: " if entry.targets else "")
        for i, r in enumerate(raws)
    ]
    local = [t for t in targets if t.upstream is None]
    if len(local) > 1:
        raise RegistryError(path, route, "targets: at most one local (non-upstream) target")
    if entry.strategy == "spill" and (not local or len(targets) < 2):
        raise RegistryError(
            path, route, 'strategy "spill" needs a local target and an upstream one'
        )
    first = local[0] if local else None
    first_raw = raws[first.index] if first else {}
    options = {
        k: v
        for k, v in first_raw.items()
        if k not in ("backend", "delay_ms", "max_batch", "warm", "weight")
    }
    return RouteSpec(
        route=route,
        backend=first.backend if first else UPSTREAM,
        tasks=tuple(entry.tasks),
        delay_ms=int(first_raw.get("delay_ms", 0)),
        max_batch=int(first_raw.get("max_batch", 1)),
        warm=bool(first_raw.get("warm", False)),
        price_micros=price,
        price_2k_micros=price_2k,
        safety=entry.safety,
        options=options,
        targets=_named(targets),
        strategy=entry.strategy,
        spill_after_s=entry.spill_after_s,
        max_failovers=entry.max_failovers,
    )


def parse_registry(text: str, path: Path | str) -> Registry:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(path, None, f"not valid TOML: {exc}") from exc
    models = document.get("models")
    if not isinstance(models, dict) or not models:
        raise RegistryError(path, None, 'no [models."owner/name"] tables')
    routes: dict[str, RouteSpec] = {}
    for route, raw in models.items():
        if not _ROUTE.match(route):
            raise RegistryError(path, route, "route must look like owner/name")
        if not isinstance(raw, dict):
            raise RegistryError(path, route, "must be a table")
        routes[route] = _route_spec(path, route, raw)
    return Registry(routes=routes, source=str(path))


def load_registry(path: Path | None = None) -> Registry:
    path = path or default_registry_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RegistryError(path, None, f"cannot be read: {exc.strerror or exc}") from exc
    return parse_registry(text, path)


def check_installed(registry: Registry) -> None:
    """Stop at start, naming the route and the install command, when a route's backend
    needs packages this environment lacks: otherwise every job of it would fail later."""
    for spec in registry.routes.values():
        packages, install = BACKEND_PACKAGES.get(spec.backend, ((), ""))
        missing = [name for name in packages if importlib.util.find_spec(name) is None]
        if missing:
            raise RegistryError(
                registry.source,
                spec.route,
                f"the {spec.backend} backend needs {', '.join(missing)}, which are not "
                f"installed: {install}",
            )
