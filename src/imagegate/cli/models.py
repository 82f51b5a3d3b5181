"""``imagegate models``: the routes this server answers, and their weights ahead of time."""

from __future__ import annotations

from typing import Annotated

import typer

from imagegate.domain.diffusers_options import BUILTIN, DiffusersOptions
from imagegate.domain.registry import (
    Registry,
    RegistryError,
    RouteSpec,
    check_installed,
    load_registry,
)
from imagegate.settings import Settings

models_app = typer.Typer(no_args_is_help=True, help="the model registry")


def registry_or_exit(settings: Settings, *, needs_backends: bool = False) -> Registry:
    """The registry, or exit 2 with the file, the route and the problem; with
    ``needs_backends``, also when a route's backend is not installed here."""
    try:
        registry = load_registry(settings.models)
        if needs_backends:
            check_installed(registry)
    except RegistryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if needs_backends:
        _warn_missing_keys(registry)
    return registry


def _warn_missing_keys(registry: Registry) -> None:
    """Say at start, not at the first job, that a provider target has no keys: its jobs
    would move to the next target, or fail."""
    import os

    for spec in registry.routes.values():
        for target in spec.all_targets:
            env = target.upstream.api_keys_env if target.upstream else None
            if env and not os.environ.get(env, "").strip():
                typer.echo(
                    f"warning: {spec.route}: target {target.name} has no API keys: "
                    f"${env} is unset; its jobs will go to the next target or fail",
                    err=True,
                )


def _weights(spec: RouteSpec) -> str:
    if spec.backend != "diffusers":
        return ""
    options = DiffusersOptions.model_validate(spec.options)
    source = options.source
    directory = options.local_directory()
    if directory is not None:
        kind = "shipped in the package" if source.startswith(BUILTIN) else "local directory"
        where = kind if directory.is_dir() else "missing"
        return f"{source} ({where})"
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return f"{source} (install imagegate[diffusers] to use it)"
    cached = try_to_load_from_cache(source, "model_index.json")
    state = "downloaded" if isinstance(cached, str) else "not downloaded"
    return f"{source} ({state})"


@models_app.command("list")
def models_list() -> None:
    """Each route: its backend, tasks, batch size and where its weights are; for a route
    with several targets, the strategy and each target."""
    for spec in registry_or_exit(Settings()).routes.values():
        targets = ""
        if len(spec.all_targets) > 1 or spec.local_target is None:
            named = ",".join(
                f"{t.name}({t.upstream.upstream_model})" if t.upstream else f"local({t.backend})"
                for t in spec.all_targets
            )
            targets = f"  strategy={spec.strategy}  targets={named}"
        typer.echo(
            f"{spec.route}  backend={spec.backend}  tasks={','.join(spec.tasks)}  "
            f"max_batch={spec.max_batch}{targets}  {_weights(spec)}".rstrip()
        )


@models_app.command("pull")
def models_pull(
    route: Annotated[str, typer.Argument(help="a route from `imagegate models list`")],
) -> None:
    """Download a route's weights now (where the Hugging Face hub is reachable), so that
    its first job does not wait for them."""
    spec = registry_or_exit(Settings()).routes.get(route)
    if spec is None:
        typer.echo(f"error: no route {route!r} in the registry", err=True)
        raise typer.Exit(1)
    if spec.backend != "diffusers":
        typer.echo(f"{route}: the {spec.backend} backend has no weights to download")
        return
    from imagegate.backends.diffusers.loading import ModelLoadError, download

    try:
        typer.echo(download(route, DiffusersOptions.model_validate(spec.options)))
    except ModelLoadError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
