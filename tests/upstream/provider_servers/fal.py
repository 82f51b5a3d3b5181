"""fal's queue API as its documentation describes it: ``POST /{model}`` queues a request;
``GET /{owner}/{app}/requests/{id}/status`` answers 202 while it waits and 200 once it is
COMPLETED; ``GET /{owner}/{app}/requests/{id}`` gives the result or the model's error (a
``detail`` list of typed errors); ``PUT .../cancel`` cancels. Status, result and cancel
are served under the app only, never under the model's endpoint path (``fal-ai/flux``,
not ``fal-ai/flux/dev``)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.upstream.provider_servers.base import Job, ProviderServer

NAMESPACES = ("workflows", "comfy")


def _app_of(model: str) -> str:
    parts = model.split("/")
    return "/".join(parts[: 3 if parts[0] in NAMESPACES else 2])


def _errors(status: int, kind: str, message: str) -> JSONResponse:
    body = {
        "detail": [
            {"loc": ["body"], "msg": message, "type": kind, "url": "https://docs.fal.ai/errors"}
        ]
    }
    return JSONResponse(body, status_code=status)


class FalServer(ProviderServer):
    def routes(self) -> list[Route]:
        return [
            Route("/{app:path}/requests/{id}/status", self.status, methods=["GET"]),
            Route("/{app:path}/requests/{id}/cancel", self.cancel, methods=["PUT"]),
            Route("/{app:path}/requests/{id}", self.result, methods=["GET"]),
            Route("/{model:path}", self.submit, methods=["POST"]),
        ]

    def _refused(self, request: Request) -> Response | None:
        key = self.key_of(request, "Key")
        if key is None or key in self.faults.bad_keys:
            return JSONResponse({"detail": "No user found for Key ID and Secret"}, status_code=401)
        if key in self.faults.broke_keys:
            detail = (
                "User is locked. Reason: Exhausted balance. "
                "Top up your balance at fal.ai/dashboard/billing."
            )
            return JSONResponse({"detail": detail}, status_code=403)
        return None

    def _job(self, request: Request) -> Job | None:
        job = self.jobs.get(request.path_params["id"])
        return job if job is not None and job.app == request.path_params["app"] else None

    def _urls(self, job: Job) -> dict[str, str]:
        home = f"{self.url}/{job.app}/requests/{job.id}"
        return {
            "response_url": home,
            "status_url": f"{home}/status",
            "cancel_url": f"{home}/cancel",
        }

    async def submit(self, request: Request) -> Response:
        received = await self.record(request)
        if (refused := self._refused(request)) is not None:
            return refused
        if self.faults.submit_status is not None:
            headers = {"Retry-After": self.faults.retry_after} if self.faults.retry_after else {}
            return JSONResponse({"detail": "Too many requests"}, self.faults.submit_status, headers)
        inputs: dict[str, Any] = received.json
        job = self.new_job(int(inputs.get("num_images", 1)), _app_of(request.path_params["model"]))
        body = {"request_id": job.id, "status": "IN_QUEUE", "queue_position": 0, **self._urls(job)}
        return JSONResponse(body)

    async def status(self, request: Request) -> Response:
        if (refused := self._refused(request)) is not None:
            return refused
        if (job := self._job(request)) is None:
            return JSONResponse({"detail": "Request not found"}, status_code=404)
        if self.done(job):
            body = {"status": "COMPLETED", "logs": None, "metrics": {"inference_time": 0.4}}
            return JSONResponse({**body, "response_url": self._urls(job)["response_url"]})
        waiting = {
            "status": "IN_PROGRESS",
            "logs": None,
            "response_url": self._urls(job)["response_url"],
        }
        return JSONResponse(waiting, status_code=202)

    async def result(self, request: Request) -> Response:
        if (refused := self._refused(request)) is not None:
            return refused
        if (job := self._job(request)) is None:
            return JSONResponse({"detail": "Request not found"}, status_code=404)
        if not self.done(job):
            return JSONResponse({"detail": "Request is still in progress"}, status_code=400)
        if self.faults.block_content:
            # The words of fal's content checker need not say "policy": the type does.
            return _errors(
                422, "content_policy_violation", "Input was rejected by the content checker."
            )
        if self.faults.job_error is not None:
            return _errors(
                self.faults.job_error_status, "internal_server_error", self.faults.job_error
            )
        urls = self.image_urls(job)
        images = [
            {"url": url, "width": 8, "height": 8, "content_type": "image/png"} for url in urls
        ]
        nsfw = [self.faults.nsfw_first and index == 0 for index in range(job.n)]
        return JSONResponse(
            {"images": images, "has_nsfw_concepts": nsfw, "seed": 1234, "prompt": ""}
        )

    async def cancel(self, request: Request) -> Response:
        if (refused := self._refused(request)) is not None:
            return refused
        if (job := self._job(request)) is None:
            return JSONResponse({"detail": "Request not found"}, status_code=404)
        self.cancels.append(job.id)
        if self.done(job):
            return JSONResponse({"status": "ALREADY_COMPLETED"}, status_code=400)
        job.canceled = True
        return JSONResponse({"status": "CANCELLATION_REQUESTED"}, status_code=202)
