"""The whole loop in one browser session, one role after another: the inspector uploads a
recording through the queue page's form, the analysis job runs (the worker's own job
function, ``run_analysis``, with the scripted analyser of ``seed.py`` in place of ASR and
detection: the claim, save, review state and alert path are the worker's), the inspector
reviews it and sends feedback, the agent appeals, the supervisor overturns, and the
manager sees the overturned appeal and the call's violations in the trends page.

The call is dated October 2026, a month no other browser test uses, so the trend rows the
manager reads are this call's alone.
"""

from __future__ import annotations

import pytest
from api_support import FIXTURES
from conftest import UiServer, Watched, login, logout, run_analysis_job, shot

pytestmark = pytest.mark.browser


def test_upload_to_trends(ui: Watched, ui_server: UiServer) -> None:
    page = ui.page
    # 1. Upload (inspector, queue page form).
    login(page, ui_server, "inspector")
    page.click("#upload-card summary")
    page.set_input_files(
        "#up-file",
        files=[
            {
                "name": "e2e.wav",
                "mimeType": "audio/wav",
                "buffer": (FIXTURES / "stereo_8k.wav").read_bytes() + b"e2e",
            }
        ],
    )
    page.fill("#up-call", "call-e2e")
    page.fill("#up-agent", "A1")
    page.fill("#up-team", "T1")
    page.fill("#up-started", "2026-10-15 10:20")
    page.click("#upload-form button[type=submit]")
    result = page.locator("#upload-result")
    result.wait_for()
    assert "排队分析中" in result.inner_text()
    call_id = result.get_attribute("data-call-id")
    assert call_id
    shot(ui_server, page, "e2e-1-uploaded")

    # 2. Analysis: the worker's job, run here.
    assert run_analysis_job(ui_server, call_id) == "analyzed"

    # 3. Review: claim from the queue, C C C C, complete, feedback.
    page.get_by_role("button", name="刷新").click()
    row = page.locator(f"tr[data-call-id='{call_id}']")
    row.wait_for()
    row.locator("button", has_text="认领").click()
    page.wait_for_url(f"**/ui/calls/{call_id}")
    page.wait_for_selector("#call-page[data-player-ready='true']")
    page.locator("#transcript").click(position={"x": 5, "y": 5})
    for fi in range(4):
        page.keyboard.press("c")
        page.wait_for_selector(f".finding[data-fi='{fi}'].confirmed")
    page.click("#complete")
    page.wait_for_selector("#feedback-card:not([hidden])")
    page.fill("#fb-summary", "端到端：注意措辞。")
    page.click("#feedback-form button[type=submit]")
    page.wait_for_function("document.getElementById('call-state').textContent === '已反馈'")
    shot(ui_server, page, "e2e-3-reviewed")
    logout(page)

    # 4. Appeal (agent inbox).
    login(page, ui_server, "agent")
    card = page.locator(f"article[data-call-id='{call_id}']")
    card.wait_for()
    finding = card.locator("tr", has_text="P07")
    finding.get_by_role("button", name="申诉", exact=True).click()
    finding.locator("textarea").fill("客户同意每日提醒。")
    finding.locator("button", has_text="提交申诉").click()
    finding.locator("text=申诉：待裁决").wait_for()
    shot(ui_server, page, "e2e-4-appealed")
    logout(page)

    # 5. Ruling (supervisor).
    login(page, ui_server, "supervisor")
    appeal = page.locator("#appeals-table tr", has_text=call_id)
    appeal.wait_for()
    appeal.locator("input").fill("录音核实，改判。")
    appeal.locator("button", has_text="改判撤销").click()
    page.locator("#appeals-table tr", has_text=call_id).wait_for(state="detached")
    logout(page)

    # 6. The manager's trends: October's review row for team T1 shows the overturn.
    login(page, ui_server, "manager")
    october = "#review-trend tr[data-group='T1'][data-period='2026-10']"
    total = page.locator(f"{october}[data-rule='合计']")
    total.wait_for()
    assert total.locator("td.overturned").inner_text() == "1"
    p07 = page.locator(f"{october}[data-rule='P07']")
    assert p07.locator("td.overturned").inner_text() == "1"
    page.fill("#tr-from", "2026/10/01")  # dates are yyyy-mm-dd, said in Chinese
    page.press("#tr-from", "Tab")
    assert "yyyy-mm-dd" in page.inner_text("p.error")
    page.fill("#tr-from", "2026-10-01")
    page.press("#tr-from", "Tab")
    page.fill("#tr-to", "2026-10-31")
    page.press("#tr-to", "Tab")
    page.locator("#review-trend tr[data-period='2026-11']").first.wait_for(state="detached")
    violations = page.locator("section tr", has_text="2026-10").filter(has_text="P02")
    assert violations.count() >= 1  # the confirmed P02 stands in October's violations
    shot(ui_server, page, "e2e-6-manager-trends")
