"""axe-core (vendored, run in the page) on every main page: no serious or critical
accessibility violation (WCAG 2.1 A and AA rules)."""

from __future__ import annotations

import pytest
from conftest import UiServer, Watched, login, logout, shot

from reviewer_ui.assets import ASSETS

pytestmark = pytest.mark.browser

# role → the pages it opens (each page's data loaded before axe runs)
PAGES = {
    "inspector": ["/ui/queue", "/ui/calls/call-a", "/ui/complaints", "/password"],
    "agent": ["/ui/inbox", "/ui/scorecard"],
    "supervisor": ["/ui/appeals", "/ui/alerts", "/ui/scorecard", "/ui/trends", "/ui/coaching"],
    "manager": ["/ui/trends", "/ui/complaints", "/ui/reports/agency"],
    "admin": ["/ui/admin/accounts", "/ui/admin/settings"],
}
AXE_OPTIONS = {
    "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
    "resultTypes": ["violations"],
}


def _serious(page) -> list[str]:  # type: ignore[no-untyped-def]
    page.add_script_tag(url=ASSETS["axe"])
    result = page.evaluate(
        "(opts) => axe.run(document, opts).then(r => ({v: r.violations, p: r.passes.length}))",
        {**AXE_OPTIONS, "resultTypes": ["violations", "passes"]},
    )
    assert result["p"] > 5, "axe-core checked almost nothing: did it run?"
    violations = result["v"]
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — "
        + "; ".join(
            n["target"][0] if isinstance(n["target"][0], str) else str(n["target"])
            for n in v["nodes"][:3]
        )
        for v in violations
        if v["impact"] in {"serious", "critical"}
    ]


def test_no_serious_violation_on_any_page(ui: Watched, ui_server: UiServer) -> None:
    page = ui.page
    found: dict[str, list[str]] = {}
    page.goto(ui_server.url + "/login")
    shot(ui_server, page, "page-login")
    found["/login"] = _serious(page)
    for role, paths in PAGES.items():
        login(page, ui_server, role)
        for path in paths:
            page.goto(ui_server.url + path)
            # The alert stream never lets the network go idle: give the API calls a moment.
            page.wait_for_timeout(600)
            if path.startswith("/ui/calls/"):
                page.wait_for_selector("#call-page[data-player-ready='true']")
            # One screenshot per page and role (1366×768), e.g. page-agent-scorecard.png.
            shot(ui_server, page, f"page-{role}{path.removeprefix('/ui').replace('/', '-')}")
            page.evaluate("document.querySelectorAll('details').forEach((d) => (d.open = true))")
            found[f"{role} {path}"] = _serious(page)
        logout(page)
    bad = {k: v for k, v in found.items() if v}
    assert not bad, bad
