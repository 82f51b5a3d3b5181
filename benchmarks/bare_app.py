"""The reference for ``api_overhead.py``: imagegate's submit and read routes with only the
parse-and-answer left (no auth, database, storage or queue).

It parses the same pydantic body and path parameters and answers the same envelope,
serialised the same way (``imagegate.api.envelope.ok`` builds the bytes around the model's
own dump). Run it under the same uvicorn settings as ``imagegate serve``:

    python benchmarks/bare_app.py --port 8001
"""

from __future__ import annotations

import argparse
import secrets
import time
from datetime import UTC, datetime
from typing import Annotated

import uvicorn
from fastapi import FastAPI, Path, Request, Response

from imagegate.wire import GenerationRequest, Prediction, PredictionUrls, Timings

app = FastAPI(title="bare")

Segment = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$")]
PredictionId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


def _ok(data: Prediction) -> Response:
    body = b'{"code":200,"message":"success","data":' + data.model_dump_json().encode() + b"}"
    return Response(content=body, media_type="application/json")


def _base_url(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _prediction(prediction_id: str, model: str, base_url: str, done: bool) -> Prediction:
    outputs = [f"{base_url}/api/v3/media/files/out/{prediction_id}/0.png"] if done else []
    return Prediction(
        id=prediction_id,
        model=model,
        outputs=outputs,
        urls=PredictionUrls(get=f"{base_url}/api/v3/predictions/{prediction_id}/result"),
        status="completed" if done else "created",
        error=None,
        executionTime=0,
        timings=Timings(inference=0),
        has_nsfw_contents=[False] * len(outputs),
        created_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
    )


@app.post("/api/v3/{owner}/{model}/{task}")
async def submit(
    request: Request, owner: Segment, model: Segment, task: Segment, body: GenerationRequest
) -> Response:
    job_id = f"{int(time.time() * 1000):012x}{secrets.token_hex(10)}"
    return _ok(_prediction(job_id, f"{owner}/{model}", _base_url(request), done=False))


@app.get("/api/v3/predictions/{prediction_id}/result")
async def get_result(request: Request, prediction_id: PredictionId) -> Response:
    return _ok(_prediction(prediction_id, "kwaivgi/kling-image-o1", _base_url(request), True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    # The same call as `imagegate serve`.
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)


if __name__ == "__main__":
    main()
