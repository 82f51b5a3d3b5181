"""Replicate's predictions API as its documentation describes it: ``POST
/v1/models/{owner}/{name}/predictions`` (or ``POST /v1/predictions`` with a ``version``)
answers 201 with a prediction ``starting``; ``GET /v1/predictions/{id}`` moves it through
``processing`` to ``succeeded`` (``output``: a list of URLs, or one URL), ``failed``
(``error``) or ``canceled``; ``POST /v1/predictions/{id}/cancel`` cancels. Errors are
problem details (``title``, ``detail``, ``status``)."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.upstream.provider_servers.base import Job, ProviderServer

NSFW_ERROR = "NSFW content detected. Try running it again, or try a different prompt."


def _problem(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None
) -> Response:
    body = {"title": title, "detail": detail, "status": status}
    return JSONResponse(body, status_code=status, headers=headers)


class ReplicateServer(ProviderServer):
    def reset(self) -> None:
        super().reset()
        self.single_output = False  # a model whose output is one URL, not a list
        self.versions: dict[str, str] = {}  # prediction id -> the version it was made with
        self.webhooks: dict[str, str] = {}  # prediction id -> where to call when it ends
        self.webhook_answers: list[int] = []

    def advance(self, seconds: float) -> None:
        """Move the clock; as Replicate does, POST each prediction that has now ended to
        the webhook given with it (the body is the prediction)."""
        super().advance(seconds)
        for job_id, url in list(self.webhooks.items()):
            job = self.jobs[job_id]
            if self.done(job) or job.canceled:
                del self.webhooks[job_id]
                answer = httpx.post(url, json=self.prediction(job), timeout=10)
                self.webhook_answers.append(answer.status_code)

    def routes(self) -> list[Route]:
        return [
            Route("/v1/models/{owner}/{name}/predictions", self.create, methods=["POST"]),
            Route("/v1/predictions", self.create, methods=["POST"]),
            Route("/v1/predictions/{id}", self.get, methods=["GET"]),
            Route("/v1/predictions/{id}/cancel", self.cancel, methods=["POST"]),
        ]

    def _refused(self, request: Request) -> Response | None:
        key = self.key_of(request, "Bearer")
        if key is None or key in self.faults.bad_keys:
            return _problem(401, "Unauthenticated", "You did not pass a valid authentication token")
        if key in self.faults.broke_keys:
            detail = (
                "You have insufficient credit to run this model. Go to "
                "https://replicate.com/account/billing#billing to purchase credit."
            )
            return _problem(402, "Insufficient credit", detail)
        return None

    def prediction(self, job: Job) -> dict[str, Any]:
        home = f"{self.url}/v1/predictions/{job.id}"
        body: dict[str, Any] = {
            "id": job.id,
            "status": "processing",
            "output": None,
            "error": None,
            "logs": "",
            "urls": {"get": home, "cancel": f"{home}/cancel"},
        }
        if job.canceled:
            return {**body, "status": "canceled"}
        if not self.done(job):
            return body
        if self.faults.block_content or self.faults.job_error is not None:
            body["status"] = "failed"
            body["error"] = NSFW_ERROR if self.faults.block_content else self.faults.job_error
        else:
            urls = self.image_urls(job)
            body["status"] = "succeeded"
            body["output"] = urls[0] if self.single_output else urls
        return body

    async def create(self, request: Request) -> Response:
        received = await self.record(request)
        if (refused := self._refused(request)) is not None:
            return refused
        if self.faults.submit_status is not None:
            headers = {"Retry-After": self.faults.retry_after} if self.faults.retry_after else None
            detail = (
                "Request was throttled." if self.faults.submit_status == 429 else "Server error"
            )
            return _problem(self.faults.submit_status, detail, detail, headers)
        body: dict[str, Any] = received.json
        if "owner" not in request.path_params and not body.get("version"):
            return _problem(422, "Input validation failed", "- version: version is required")
        job = self.new_job(int(body["input"].get("num_outputs", 1)))
        self.versions[job.id] = body.get("version", "")
        if body.get("webhook"):
            self.webhooks[job.id] = body["webhook"]
        return JSONResponse({**self.prediction(job), "status": "starting"}, status_code=201)

    async def get(self, request: Request) -> Response:
        if (refused := self._refused(request)) is not None:
            return refused
        job = self.jobs.get(request.path_params["id"])
        if job is None:
            return _problem(404, "Not found", "The requested resource could not be found.")
        return JSONResponse(self.prediction(job))

    async def cancel(self, request: Request) -> Response:
        if (refused := self._refused(request)) is not None:
            return refused
        job = self.jobs.get(request.path_params["id"])
        if job is None:
            return _problem(404, "Not found", "The requested resource could not be found.")
        self.cancels.append(job.id)
        if not self.done(job):
            job.canceled = True
        return JSONResponse(self.prediction(job))
