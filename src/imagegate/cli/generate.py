"""The client-side commands, on the SDK: ``generate``, ``upload`` and ``predictions``.
They talk to a server at ``--base-url`` (``IMAGEGATE_BASE_URL``) with ``--api-key``
(``IMAGEGATE_API_KEY``), imagegate or any server of the v3 prediction API.

Exit codes tell failures apart for scripts: 0 done, 1 the job failed, 2 usage, 3 the key
was refused (401), 4 not allowed or not enough balance (403), 5 not found, 6 a bad
request (400, 413), 7 rate-limited, 8 blocked by the content policy, 9 a server error,
10 no answer (connection, timeout).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from imagegate.client import Client, Prediction

predictions_app = typer.Typer(no_args_is_help=True, help="your predictions on a server")

BaseUrl = Annotated[
    str | None,
    typer.Option(envvar="IMAGEGATE_BASE_URL", help="the server [default: http://127.0.0.1:8000]"),
]
ApiKey = Annotated[str | None, typer.Option(envvar="IMAGEGATE_API_KEY", help="your API key")]
Json = Annotated[bool, typer.Option("--json", help="print the answer's envelope as JSON")]


def _exit_code(exc: Exception) -> int:
    from imagegate import client as sdk

    table: list[tuple[type[Exception], int]] = [
        (sdk.ContentPolicyError, 8),
        (sdk.PredictionFailedError, 1),
        (sdk.AuthenticationError, 3),
        (sdk.PermissionDeniedError, 4),
        (sdk.NotFoundError, 5),
        (sdk.BadRequestError, 6),
        (sdk.RequestTooLargeError, 6),
        (sdk.RateLimitError, 7),
        (sdk.ServerError, 9),
        (sdk.APIConnectionError, 10),
    ]
    return next((code for kind, code in table if isinstance(exc, kind)), 1)


def _fail(exc: Exception, as_json: bool) -> NoReturn:
    from imagegate import client as sdk

    if as_json:
        if isinstance(exc, sdk.PredictionFailedError):
            body: Any = _envelope(exc.prediction)
        elif isinstance(exc, sdk.APIStatusError) and isinstance(exc.body, dict):
            body = exc.body
        else:
            body = {"code": 0, "message": str(exc), "data": None}
        typer.echo(json.dumps(body))
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(_exit_code(exc))


def _envelope(prediction: Prediction, **extra: Any) -> dict[str, Any]:
    return {"code": 200, "message": "success", "data": prediction.model_dump(), **extra}


def _client(base_url: str | None, api_key: str | None) -> Client:
    from imagegate.client import Client

    return Client(base_url, api_key)


def _follow(client: Client, prediction: Prediction, quiet: bool) -> Prediction:
    """Poll the job until it ends, showing its status and denoising steps."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if prediction.status in ("completed", "failed"):
        return prediction
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, transient=True, disable=quiet, console=_stderr()) as progress:
        task = progress.add_task(f"{prediction.id[:12]} {prediction.status}", total=None)
        while prediction.status not in ("completed", "failed"):
            time.sleep(0.25)
            prediction = client.get(prediction.id)
            step = prediction.progress
            progress.update(
                task,
                description=f"{prediction.id[:12]} {prediction.status}",
                completed=step.step if step else 0,
                total=step.total if step else None,
            )
    return prediction


def _stderr() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def generate(
    prompt: Annotated[str, typer.Argument(help="what to draw")],
    model: Annotated[str, typer.Option(help="the route")] = "kwaivgi/kling-image-o1",
    n: Annotated[int, typer.Option("--n", min=1, max=9, help="how many images")] = 1,
    aspect_ratio: Annotated[str | None, typer.Option(help="16:9, 1:1, ... or auto")] = None,
    resolution: Annotated[str | None, typer.Option(help="1k or 2k")] = None,
    seed: Annotated[int | None, typer.Option(help="same seed, same request: same pixels")] = None,
    negative_prompt: Annotated[str | None, typer.Option(help="what to avoid")] = None,
    image: Annotated[
        list[str] | None,
        typer.Option("--image", help="a reference image: a local file (uploaded) or a URL"),
    ] = None,
    output_format: Annotated[str | None, typer.Option(help="png, jpeg or webp")] = None,
    out: Annotated[Path, typer.Option("-o", "--out", help="directory for the images")] = Path(),
    as_json: Json = False,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Generate images; saves OUT/<prediction id>-<i>.<ext> and prints each path."""
    from imagegate import client as sdk

    quiet = as_json or not sys.stderr.isatty()
    with _client(base_url, api_key) as client:
        try:
            references = [
                ref if "://" in ref or ref.startswith("data:") else client.upload(ref)
                for ref in image or []
            ]
            handle = client.submit(
                model,
                prompt=prompt,
                n=n,
                aspect_ratio=aspect_ratio,
                resolution=resolution,
                seed=seed,
                negative_prompt=negative_prompt,
                images=references or None,
                output_format=output_format,
            )
            prediction = _follow(client, handle.prediction, quiet)
            result = client.result(prediction)
        except sdk.ImagegateClientError as exc:
            _fail(exc, as_json)
    paths = result.save_all(out)
    if as_json:
        typer.echo(json.dumps(_envelope(result.prediction, files=[str(p) for p in paths])))
    else:
        for path in paths:
            typer.echo(str(path))


def upload(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="an image file")],
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Upload an image; prints its URL, usable as a reference."""
    from imagegate import client as sdk

    with _client(base_url, api_key) as client:
        try:
            typer.echo(client.upload(file))
        except sdk.ImagegateClientError as exc:
            _fail(exc, False)


@predictions_app.command("list")
def predictions_list(
    status: Annotated[
        str | None, typer.Option(help="created, processing, completed, failed")
    ] = None,
    model: Annotated[str | None, typer.Option(help="only this route")] = None,
    limit: Annotated[int, typer.Option(min=1, help="at most this many")] = 20,
    as_json: Json = False,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Your predictions, newest first."""
    from imagegate import client as sdk

    with _client(base_url, api_key) as client:
        try:
            found = []
            for prediction in client.predictions(
                page_size=min(limit, 100), status=status, model=model
            ):
                found.append(prediction)
                if len(found) >= limit:
                    break
        except sdk.ImagegateClientError as exc:
            _fail(exc, as_json)
    if as_json:
        typer.echo(
            json.dumps({"code": 200, "message": "success", "data": [p.model_dump() for p in found]})
        )
        return
    for p in found:
        typer.echo(f"{p.id}  {p.status:<10}  {p.created_at}  {p.model}  {len(p.outputs)} outputs")


def _one(
    action: str, prediction_id: str, as_json: bool, base_url: str | None, api_key: str | None
) -> None:
    from imagegate import client as sdk

    with _client(base_url, api_key) as client:
        try:
            prediction = (
                client.get(prediction_id) if action == "get" else client.cancel(prediction_id)
            )
        except sdk.ImagegateClientError as exc:
            _fail(exc, as_json)
    if as_json:
        typer.echo(json.dumps(_envelope(prediction)))
        return
    typer.echo(f"{prediction.id}  {prediction.status}  {prediction.error or ''}".rstrip())
    for url in prediction.outputs:
        typer.echo(url)


@predictions_app.command("get")
def predictions_get(
    prediction_id: Annotated[str, typer.Argument(help="the prediction id")],
    as_json: Json = False,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
) -> None:
    """A prediction: its status, error and output URLs."""
    _one("get", prediction_id, as_json, base_url, api_key)


@predictions_app.command("cancel")
def predictions_cancel(
    prediction_id: Annotated[str, typer.Argument(help="the prediction id")],
    as_json: Json = False,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Cancel a job that has not ended (it is refunded)."""
    _one("cancel", prediction_id, as_json, base_url, api_key)
