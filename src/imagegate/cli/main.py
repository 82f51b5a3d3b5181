"""The ``imagegate`` command. Each command imports what it needs inside itself, so that
``imagegate --help`` stays instant."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from imagegate.cli.models import models_app, registry_or_exit

if TYPE_CHECKING:
    from imagegate.services.container import Services

T = TypeVar("T")

app = typer.Typer(no_args_is_help=True, help="imagegate: a self-hosted image generation server")
keys_app = typer.Typer(no_args_is_help=True, help="API keys")
db_app = typer.Typer(no_args_is_help=True, help="the database")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
app.add_typer(models_app, name="models")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    worker: Annotated[
        bool | None,
        typer.Option(help="run the in-process worker [default: IMAGEGATE_RUN_WORKER, else on]"),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
) -> None:
    """Serve the API (and, by default, run jobs in the same process)."""
    import uvicorn

    from imagegate.assembly import build_app
    from imagegate.logs import configure_logging
    from imagegate.settings import Settings

    configure_logging(log_level)
    settings = Settings() if worker is None else Settings(run_worker=worker)
    registry_or_exit(settings, needs_backends=settings.run_worker)  # before binding the port
    uvicorn.run(build_app(settings), host=host, port=port, log_level=log_level, access_log=False)


@app.command("worker")
def run_worker(
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
) -> None:
    """Run jobs only (no HTTP), beside one or more `serve --no-worker` processes."""
    import anyio

    from imagegate.logs import configure_logging
    from imagegate.services.container import open_services
    from imagegate.settings import Settings
    from imagegate.worker.supervisor import Worker

    configure_logging(log_level)
    settings = Settings()
    registry_or_exit(settings, needs_backends=True)

    async def main() -> None:
        async with open_services(settings) as services:
            await Worker(services).run()

    anyio.run(main)


def _run_services(action: Callable[[Services], Awaitable[T]]) -> T:
    import anyio

    from imagegate.services.container import open_services
    from imagegate.settings import Settings

    async def main() -> T:
        async with open_services(Settings()) as services:
            return await action(services)

    return anyio.run(main)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="a label for the key")],
    account: Annotated[str | None, typer.Option(help="add the key to this account")] = None,
) -> None:
    """Create a key. It is printed once, alone on the last line; only its hash is kept."""
    from imagegate.errors import ImagegateError

    try:
        new = _run_services(lambda s: s.accounts.create_key(name, account))
    except ImagegateError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"key id: {new.record.id}  account: {new.record.account_id}", err=True)
    typer.echo(new.token)


@keys_app.command("list")
def keys_list() -> None:
    """Key ids, names, accounts and states (never the keys themselves)."""
    records = _run_services(lambda s: s.accounts.list_keys())
    for r in records:
        state = f"revoked {r.revoked_at:%Y-%m-%d %H:%M}" if r.revoked_at else "active"
        used = f"{r.last_used_at:%Y-%m-%d %H:%M}" if r.last_used_at else "never"
        typer.echo(f"{r.id}  {r.name}  account={r.account_id}  {state}  last used {used}")


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="the key id from `keys list`")]) -> None:
    """Revoke a key; requests with it get 401 from now on."""
    from imagegate.errors import ImagegateError

    try:
        _run_services(lambda s: s.accounts.revoke(key_id))
    except ImagegateError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"revoked {key_id}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations (serve does this on start too)."""
    import anyio

    from imagegate.settings import Settings
    from imagegate.store.engine import Database
    from imagegate.store.migrate import upgrade

    async def main() -> None:
        db = Database(Settings().resolved_database_url)
        try:
            await upgrade(db.engine)
        finally:
            await db.dispose()

    anyio.run(main)
    typer.echo("database is at the latest revision")
