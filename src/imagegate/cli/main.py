"""The ``imagegate`` command. Each command imports what it needs inside itself, so that
``imagegate --help`` stays instant."""

from __future__ import annotations

from typing import Annotated

import typer

from imagegate.cli.accounts import accounts_app, keys_app
from imagegate.cli.generate import generate, predictions_app, upload
from imagegate.cli.models import models_app, registry_or_exit
from imagegate.cli.usage import usage

app = typer.Typer(no_args_is_help=True, help="imagegate: a self-hosted image generation server")
db_app = typer.Typer(no_args_is_help=True, help="the database")
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
app.add_typer(models_app, name="models")
app.add_typer(predictions_app, name="predictions")
app.command()(generate)
app.command()(upload)
app.command()(usage)


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
