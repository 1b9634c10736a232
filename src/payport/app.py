"""The FastAPI application: routers, error mapping, and the runtime in its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import text

from payport import __version__
from payport.billing.routes import router as billing_router
from payport.checkout.page import router as checkout_page_router
from payport.checkout.routes import router as checkout_router
from payport.config import Settings
from payport.errors import PayportError
from payport.http import BodySizeLimit, payport_error_handler, validation_error_handler
from payport.invoices.routes import router as invoices_router
from payport.ledger.routes import router as ledger_router
from payport.messaging.api import router as messaging_router
from payport.payments.api import router as payments_router
from payport.payments.intents_api import router as intents_router
from payport.payments.legacy_api import LEGACY_READ_DOCS, LEGACY_READ_ROUTES
from payport.payments.legacy_api import router as legacy_router
from payport.providers.sandbox import sandbox_router
from payport.refunds.routes import router as refunds_router
from payport.runtime import Runtime
from payport.stats.routes import router as stats_router
from payport.usage.routes import router as usage_router
from payport.webhooks.api import router as webhooks_router


def _document_extra_routes(app: FastAPI) -> None:
    """Add the plain Starlette routes to the OpenAPI schema FastAPI generates."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schema["paths"] = LEGACY_READ_DOCS | schema["paths"]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(
    settings: Settings, *, runtime: Runtime | None = None, run_worker: bool = True
) -> FastAPI:
    """Build the app; with `run_worker` the command worker runs inside it (`payport serve`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = runtime is None
        active = runtime or Runtime(settings)
        app.state.runtime = active
        app.state.provider = active.provider
        if run_worker and owned:
            active.deliver_webhooks_in_process()
            active.start_worker()
        if owned:
            active.settle_heap()
        try:
            yield
        finally:
            if owned:
                await active.stop()

    app = FastAPI(
        title="payport",
        version=__version__,
        summary="Escrow payments for event-driven marketplaces",
        lifespan=lifespan,
    )
    if runtime is not None:
        app.state.runtime = runtime
        app.state.provider = runtime.provider
    app.add_exception_handler(PayportError, payport_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.router.routes[0:0] = LEGACY_READ_ROUTES  # matched first: the hottest reads
    _document_extra_routes(app)
    for router in (
        legacy_router,
        payments_router,
        messaging_router,
        webhooks_router,
        sandbox_router,
    ):
        app.include_router(router)
    app.include_router(ledger_router)
    app.include_router(checkout_router)
    app.include_router(checkout_page_router)
    app.include_router(billing_router)
    app.include_router(invoices_router)
    app.include_router(refunds_router)
    app.include_router(intents_router)
    app.include_router(usage_router)
    app.include_router(stats_router)

    @app.get("/health/ready", tags=["CampusG contract"])
    async def ready() -> JSONResponse:
        """Readiness for orchestrators: the database and, on Kafka, the broker must answer."""
        active: Runtime = app.state.runtime
        report: dict[str, str] = {"status": "ready", "database": "up"}
        try:
            async with active.db.read() as session:
                await session.execute(text("SELECT 1"))
        except Exception:
            report |= {"status": "unavailable", "database": "down"}
        broker = await active.transport.broker_up()
        if broker is not None:
            report["broker"] = "up" if broker else "down"
            if not broker:
                report["status"] = "unavailable"
        return JSONResponse(report, status_code=200 if report["status"] == "ready" else 503)

    return app
