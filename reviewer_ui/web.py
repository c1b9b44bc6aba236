"""``install_ui(app)``: the pages' routes and their static files, added to the API app."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from reviewer_ui.assets import STATIC_DIR, STATIC_URL
from reviewer_ui.pages import router


def install_ui(app: FastAPI) -> None:
    """Serve the web UI from ``app``: pages at ``/``, ``/login``, ``/ui/...``; files at
    ``/static/ui``."""
    app.include_router(router)
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="ui-static")
