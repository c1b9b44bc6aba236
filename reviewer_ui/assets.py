"""The vendored front-end files the pages load, by pinned version (``vendor/refresh.sh``
writes them under ``static/vendor/<package>-<version>/``; keep the two in step)."""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_URL = "/static/ui"

_V = f"{STATIC_URL}/vendor"
ASSETS: dict[str, str] = {
    "alpine": f"{_V}/alpinejs-3.14.9/cdn.min.js",
    "wavesurfer": f"{_V}/wavesurfer.js-7.12.12/wavesurfer.min.js",
    "wavesurfer_regions": f"{_V}/wavesurfer.js-7.12.12/regions.min.js",
    "wavesurfer_timeline": f"{_V}/wavesurfer.js-7.12.12/timeline.min.js",
    "uplot": f"{_V}/uplot-1.6.32/uPlot.iife.min.js",
    "uplot_css": f"{_V}/uplot-1.6.32/uPlot.min.css",
    "axe": f"{_V}/axe-core-4.10.3/axe.min.js",
}


def asset_path(url: str) -> Path:
    """The file behind a ``/static/ui/...`` URL (the tests check every one exists)."""
    return STATIC_DIR / url.removeprefix(STATIC_URL + "/")
