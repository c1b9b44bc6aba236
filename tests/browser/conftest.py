"""A real service in a thread (uvicorn, SQLite, no Redis) and Debian's Chromium driven by
Playwright; every page's requests and console messages are recorded and checked.

Chromium comes from Debian (``apt-get install chromium``), never from ``playwright
install``. Screenshots go to ``$QA_UI_SHOTS`` (default: a pytest temp folder).
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/api_support.py

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


@dataclass
class UiServer:
    url: str
    service: object
    shots: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_ui_server(tmp: Path) -> tuple[UiServer, Callable[[], None]]:
    """Serve a seeded service on a free port in a thread; returns it and its stop()."""
    import uvicorn
    from api_support import add_role_users, add_user, make_service, seed_alert
    from seed import seed_review_call

    service = make_service(f"sqlite:///{tmp / 'qa.sqlite3'}", tmp)
    add_role_users(service)
    seed_review_call(service, "call-a", marker=b"a")
    seed_review_call(service, "call-b", marker=b"b")
    seed_alert(service, "call-b")
    # For tests/browser/test_ui_more.py: a mono call, a call to add a missed finding to,
    # a call whose alert is raised while a supervisor watches, an account that must change
    # its password at the next login.
    seed_review_call(service, "call-mono", wav="mono_8k.wav", channels="mono")
    seed_review_call(service, "call-c", marker=b"c")
    seed_review_call(service, "call-live", marker=b"live")
    add_user(service, "newbie", "inspector", must_change_password=True)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(service.app, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the UI test server did not start")
        time.sleep(0.05)
    shots = Path(os.environ.get("QA_UI_SHOTS") or tmp / "shots")
    shots.mkdir(parents=True, exist_ok=True)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)

    return UiServer(f"http://127.0.0.1:{port}", service, shots), stop


@pytest.fixture(scope="package")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    server, stop = start_ui_server(tmp_path_factory.mktemp("ui"))
    yield server
    stop()


@pytest.fixture(scope="package")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: apt-get install -y chromium (never playwright install)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@dataclass
class Watched:
    """A page plus what it did: every request URL and every console error."""

    page: object
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@pytest.fixture
def ui(browser: object, ui_server: UiServer, request: pytest.FixtureRequest) -> Iterator[Watched]:
    context = browser.new_context(  # type: ignore[attr-defined]
        viewport={"width": 1366, "height": 768}, locale="zh-CN", timezone_id="Asia/Shanghai"
    )
    page = context.new_page()
    watched = Watched(page)
    page.on("request", lambda r: watched.requests.append(r.url))
    page.on(
        "console",
        lambda m: watched.errors.append(f"{m.type}: {m.text}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda e: watched.errors.append(f"pageerror: {e}"))
    page.set_default_timeout(10_000)
    yield watched
    try:
        page.screenshot(path=str(ui_server.shots / f"{request.node.name}-end.png"), full_page=True)
    finally:
        context.close()
    foreign = [u for u in watched.requests if urlsplit(u).hostname not in LOCAL_HOSTS | {None}]
    foreign = [u for u in foreign if not u.startswith(("data:", "blob:"))]
    assert not foreign, f"requests left the host: {foreign}"
    assert not watched.errors, f"console errors: {watched.errors}"


HOMES = {
    "inspector": "/ui/queue",
    "agent": "/ui/inbox",
    "supervisor": "/ui/appeals",
    "manager": "/ui/trends",
    "admin": "/ui/admin/accounts",
}


def login(page, server: UiServer, username: str, password: str | None = None) -> None:  # type: ignore[no-untyped-def]
    """Sign in through the login form and wait for the role's home page."""
    from api_support import PASSWORDS

    page.goto(server.url + "/")
    page.fill("#username", username)
    page.fill("#password", password or PASSWORDS[username])
    page.click("#login-form button[type=submit]")
    page.wait_for_url(f"**{HOMES[username]}")


def logout(page) -> None:  # type: ignore[no-untyped-def]
    page.click("#logout")
    page.wait_for_url("**/login")


def run_analysis_job(server: UiServer, call_id: str) -> str:
    """Run the worker's analysis job for ``call_id`` in this process, as a worker would,
    with the scripted analyser (``seed.ScriptedAnalyser``) in place of ASR and detection."""
    from seed import ScriptedAnalyser

    from qa_service.worker.jobs import WorkerRuntime, run_analysis

    state = server.service.state  # type: ignore[attr-defined]
    runtime = WorkerRuntime(
        settings=state.settings,
        engine=state.engine,
        sessions=state.sessions,
        analyzer=ScriptedAnalyser(state.settings.rubric_path),
        store=state.store,
        versions={},
    )
    return run_analysis(runtime, call_id)


def shot(server: UiServer, page: object, name: str) -> Path:
    """Save a screenshot of ``page`` as ``name``.png among the test artefacts."""
    path = server.shots / f"{name}.png"
    page.screenshot(path=str(path))  # type: ignore[attr-defined]
    return path
