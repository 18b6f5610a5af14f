"""The application factory: API, console, error handlers and (on SQLite) the in-process worker."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy import Engine
from starlette.middleware.sessions import SessionMiddleware
from starlette.staticfiles import StaticFiles

from siyu import __version__
from siyu.config import Settings, get_settings
from siyu.db.session import get_engine, session_factory
from siyu.domains import domain_modules
from siyu.jobs.worker import Worker
from siyu.web.console import not_found_page
from siyu.web.errors import install_error_handlers

STATIC = Path(__file__).parent / "static"


def create_app(settings: Settings | None = None, engine: Engine | None = None,
               run_worker: bool | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = engine or get_engine(settings)
    worker = Worker(engine, settings.worker_poll_seconds)
    start_worker = settings.runs_embedded_worker if run_worker is None else run_worker

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if start_worker:
            worker.start_in_thread()
        yield
        worker.stop()

    app = FastAPI(title="siyu API", version=__version__, lifespan=lifespan,
                  description="siyu (私域) — customers, events, segments, loyalty, messaging and journeys. "
                              "Authenticate with `Authorization: Bearer <API key>`. Errors follow one problem "
                              "format: {status, code, message, field}.")
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = session_factory(engine)
    app.state.worker = worker
    app.add_middleware(SessionMiddleware, secret_key=settings.resolved_secret_key(), session_cookie="siyu_session",
                       same_site="lax", https_only=False, max_age=14 * 24 * 3600)
    install_error_handlers(app, not_found_page)
    for module in domain_modules("router") + domain_modules("console"):
        app.include_router(module.router)
    try:
        app.include_router(importlib.import_module("siyu.web.console").router)
    except ModuleNotFoundError as exc:
        if exc.name != "siyu.web.console":
            raise
    if STATIC.exists():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
