"""HTTP plumbing shared by every router: problem responses, body limit, dependencies."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from payport.errors import PayportError
from payport.runtime import Runtime

PROBLEM_JSON = "application/problem+json"


class FastJSONResponse(JSONResponse):
    """JSON rendered by orjson: the hot read routes spend less time encoding."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def problem(
    status: int, code: str, detail: str, *, field: str | None = None, **extra: Any
) -> JSONResponse:
    """An RFC 9457 problem with payport's stable `code` and the offending `field`."""
    body: dict[str, Any] = {
        "type": f"https://payport.dev/problems/{code.lower().replace('_', '-')}",
        "title": code.replace("_", " ").capitalize(),
        "status": status,
        "code": code,
        "detail": detail,
    }
    if field:
        body["field"] = field
    body.update({k: v for k, v in extra.items() if v is not None})
    return FastJSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def problem_from_error(error: PayportError) -> JSONResponse:
    return problem(error.http_status, error.code, error.message, field=error.field, **error.extra)


async def payport_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PayportError)
    return problem_from_error(exc)


async def validation_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
    field = ".".join(location) or "body"
    return problem(422, "INVALID_PAYLOAD", f"{field}: {first.get('msg')}", field=field)


class BodySizeLimit:
    """Refuse bodies over the limit with 413 before reading them into memory."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(
            413, "PAYLOAD_TOO_LARGE", f"body exceeds {self.max_bytes} bytes", field="body"
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


async def get_runtime(request: Request) -> Runtime:
    """Async on purpose: FastAPI would run a plain function in a worker thread."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def documented_body(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI for a body the route reads itself (to keep decimals exact)."""
    return {
        "requestBody": {
            "content": {"application/json": {"schema": model.model_json_schema()}},
            "required": True,
        }
    }
