"""The web UI end to end in Debian's Chromium: login per role (and the wrong-password
message), the inspector's review by keyboard with the score updating, feedback, the
agent's appeal, the supervisor's ruling, the idle lock's countdown and lock, and no
request to any host but the service (checked for every test by the ``ui`` fixture).

The tests share one server and run in file order: each step continues the review loop
the one before left.
"""

from __future__ import annotations

import re

import pytest
from conftest import HOMES, UiServer, Watched, login, shot

pytestmark = pytest.mark.browser


def test_wrong_password_shows_the_chinese_message(ui: Watched, ui_server: UiServer) -> None:
    page = ui.page
    page.goto(ui_server.url + "/")
    page.wait_for_url("**/login")
    page.fill("#username", "inspector")
    page.fill("#password", "Not-The-Right-1!")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#login-error:not([hidden])")
    assert "用户名或密码错误" in page.inner_text("#login-error")
    shot(ui_server, page, "login-wrong-password")
    # The browser reports the refused login (401) as a failed resource: expected here.
    ui.errors[:] = [e for e in ui.errors if "401" not in e]


@pytest.mark.parametrize("role", list(HOMES))
def test_each_role_lands_on_its_home_with_its_navigation(
    ui: Watched, ui_server: UiServer, role: str
) -> None:
    page = ui.page
    login(page, ui_server, role)
    nav = page.inner_text("header nav")
    expected = {
        "inspector": ["复核队列"],
        "agent": ["反馈收件箱", "成绩单"],
        "supervisor": ["申诉裁决", "实时告警", "成绩单", "趋势看板"],
        "manager": ["趋势看板", "投诉登记", "申诉裁决"],
        "admin": ["账号管理", "系统设置"],
    }[role]
    for label in expected:
        assert label in nav
    if role != "admin":
        assert "账号管理" not in nav
    page.wait_for_timeout(500)  # the page's first API calls
    shot(ui_server, page, f"home-{role}")
    page.click("#logout")
    page.wait_for_url("**/login")


def test_idle_lock_counts_down_and_locks(ui: Watched, ui_server: UiServer) -> None:
    page = ui.page
    page.clock.install()
    login(page, ui_server, "agent")
    countdown = page.locator("#idle-countdown")
    page.clock.run_for(2000)
    assert re.match(r"1[45]:\d\d 后锁定", countdown.inner_text())
    page.clock.fast_forward("14:30")
    page.clock.run_for(1000)
    assert countdown.inner_text().startswith("0:")
    assert "soon" in (countdown.get_attribute("class") or "")
    page.clock.fast_forward("01:00")
    page.clock.run_for(1000)
    page.wait_for_selector("#lock:not([hidden])")
    assert "锁定" in page.inner_text("#lock")
    shot(ui_server, page, "idle-lock")
    # The session is over on the server side too (the lock logs out).
    ui.errors[:] = [e for e in ui.errors if "401" not in e]


def test_inspector_reviews_by_keyboard_and_sends_feedback(ui: Watched, ui_server: UiServer) -> None:
    page = ui.page
    login(page, ui_server, "inspector")
    row = page.locator("tr[data-call-id='call-a']")
    row.wait_for()
    assert "投诉倾向" in row.inner_text()  # C01 not de-escalated: the riskiest tier
    shot(ui_server, page, "inspector-queue")
    row.locator("button", has_text="认领").click()
    page.wait_for_url("**/ui/calls/call-a")
    page.wait_for_selector("#call-page[data-player-ready='true']")
    assert page.inner_text("#score") == "20"
    cards = page.locator(".finding")
    assert cards.count() == 4
    assert page.locator("mark.f").count() >= 3  # findings highlighted in the transcript
    page.locator("#transcript").click(position={"x": 5, "y": 5})  # focus off the buttons
    page.keyboard.press("c")  # P07 confirmed; the selection moves to C01
    page.wait_for_selector(".finding[data-fi='0'].confirmed")
    page.keyboard.press("c")  # C01 confirmed
    page.wait_for_selector(".finding[data-fi='1'].confirmed")
    page.keyboard.press("d")  # R04: dismiss with a reason
    page.select_option(".dismiss-form .reason", "compliant_in_context")
    page.keyboard.press("Enter")
    page.wait_for_selector(".finding[data-fi='2'].dismissed")
    page.wait_for_function("document.getElementById('score').textContent === '40'")
    assert "20 → 40" in page.inner_text("#score-delta")
    assert "合计扣分 60" in page.inner_text("#breakdown")
    page.keyboard.press("c")  # P02 confirmed
    page.wait_for_selector(".finding[data-fi='3'].confirmed")
    shot(ui_server, page, "inspector-call")
    page.click("#complete")
    page.wait_for_selector("#feedback-card:not([hidden])")
    page.fill("#fb-summary", "注意投诉后的安抚与措辞。")
    page.click("#feedback-form button[type=submit]")
    page.wait_for_function("document.getElementById('call-state').textContent === '已反馈'")


def test_agent_appeals_a_finding(ui: Watched, ui_server: UiServer) -> None:
    page = ui.page
    login(page, ui_server, "agent")
    card = page.locator("article[data-call-id='call-a']")
    card.wait_for()
    row = card.locator("tr", has_text="P07")
    row.get_by_role("button", name="申诉", exact=True).click()
    row.locator("textarea").fill("客户要求我们每天提醒，并非骚扰。")
    row.locator("button", has_text="提交申诉").click()
    row.locator("text=申诉：待裁决").wait_for()
    shot(ui_server, page, "agent-inbox")


def test_supervisor_overturns_the_appeal_and_the_score_is_recomputed(
    ui: Watched, ui_server: UiServer
) -> None:
    page = ui.page
    login(page, ui_server, "supervisor")
    row = page.locator("#appeals-table tr", has_text="call-a")
    row.wait_for()
    assert "并非骚扰" in row.inner_text()
    row.locator("input").fill("核实录音，客户曾同意每日提醒。")
    row.locator("button", has_text="改判撤销").click()
    page.locator("#appeals-table tr", has_text="call-a").wait_for(state="detached")
    page.goto(ui_server.url + "/ui/calls/call-a")
    page.wait_for_selector(".finding[data-fi='0'].dismissed")
    assert page.inner_text("#score") == "70"  # P07's 30 points given back
    assert int(page.inner_text("#alert-badge")) >= 1  # the seeded complaint alert
    shot(ui_server, page, "supervisor-call")
