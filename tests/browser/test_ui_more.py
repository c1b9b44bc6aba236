"""The rest of the pages' behaviour in Chromium: the mono player (one lane, speaker
colours), a missed finding added from a text selection, N for the next call, the forced
password change, the admin's accounts (create, disable, reset with the inline form) and
the supervisor's alert badge fed live by the alert stream."""

from __future__ import annotations

import pytest
from api_support import PASSWORDS, seed_alert
from conftest import UiServer, Watched, login, shot

pytestmark = pytest.mark.browser

NEW_PASSWORD = "Saffron-Delta-8813!q"


def test_mono_call_plays_in_one_lane_with_speaker_colours(ui: Watched, ui_server: UiServer) -> None:
    page = ui.page
    login(page, ui_server, "inspector")
    page.goto(ui_server.url + "/ui/calls/call-mono")
    page.wait_for_selector("#call-page[data-player-ready='true']")
    assert page.inner_text("#lane-labels") == "单声道"
    assert "单声道" in page.inner_text("#call-meta")
    assert page.evaluate("QA.player.getDecodedData().numberOfChannels") == 1
    # The lane is drawn from the server's peaks; the recording is not fetched whole.
    assert any(u.endswith("/api/v1/calls/call-mono/waveform") for u in ui.requests)
    colours = page.evaluate(
        """() => {
          const host = document.querySelector('#waveform > div');
          return [...host.shadowRoot.querySelectorAll('[part~="region"]')]
            .map((r) => getComputedStyle(r).backgroundColor);
        }"""
    )
    agent, customer = "rgba(29, 78, 216", "rgba(194, 65, 12"  # --agent, --customer
    assert sum(c.startswith(agent) for c in colours) == 4  # the agent's four lines
    assert sum(c.startswith(customer) for c in colours) == 3
    shot(ui_server, page, "call-mono")


def test_a_chart_of_one_day_or_one_period_is_one_labelled_point(
    ui: Watched, ui_server: UiServer
) -> None:
    page = ui.page
    login(page, ui_server, "supervisor")
    page.goto(ui_server.url + "/ui/scorecard")
    page.wait_for_selector("#score-chart canvas")
    # The seeded calls are all of one day: once drawn an axis of two years around it.
    got = page.evaluate(
        """async () => {
          const box = () => {
            const el = document.createElement('div');
            el.style.width = '800px';
            document.body.appendChild(el);
            return el;
          };
          const day = lineChart(box(), [dayStart('2026-11-06')], [{label: 'A1', values: [20]}],
                                {days: true, yMax: 100});
          const period = lineChart(box(), [0], [{label: 'T1', values: [100]}],
                                   {categories: ['2026-11']});
          await new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
          // uPlot 1.6 (vendored) keeps the tick labels it drew in axes[i]._values.
          const axis = (u) => [u.scales.x.max - u.scales.x.min, u.axes[0]._values];
          return {day: axis(day), period: axis(period), y: [day.scales.y.min, day.scales.y.max]};
        }"""
    )
    assert got["day"] == [86400, ["11-06"]]
    assert got["period"] == [1, ["2026-11"]]
    assert got["y"] == [0, 100]
    shot(ui_server, page, "scorecard-one-day")


def test_missed_finding_from_a_selection_then_n_opens_the_next_call(
    ui: Watched, ui_server: UiServer
) -> None:
    page = ui.page
    login(page, ui_server, "inspector")
    page.goto(ui_server.url + "/ui/calls/call-c")
    page.click("#claim")
    page.wait_for_selector("#release")
    assert page.locator(".finding").count() == 4
    # Select the last line's text as a reader would (drag), which raises the popover.
    line = page.locator(".utt[data-ui='6'] > div")
    box = line.bounding_box()
    assert box is not None
    page.evaluate(
        """() => {
          const el = document.querySelector(".utt[data-ui='6'] > div");
          const text = el.lastChild;
          const range = document.createRange();
          range.setStart(text, 0);
          range.setEnd(text, text.length);
          const sel = window.getSelection();
          sel.removeAllRanges();
          sel.addRange(range);
        }"""
    )
    line.dispatch_event("mouseup")
    page.wait_for_selector("#selection-pop:not([hidden])")
    assert "那就这样，再见" in page.inner_text("#sel-span")
    page.select_option("#sel-rule", "R03")
    page.fill("#sel-note", "结束语生硬，未礼貌结束")
    shot(ui_server, page, "call-missed-finding")
    page.click("#sel-add")
    page.wait_for_selector(".finding.added")
    assert page.locator(".finding").count() == 5
    assert "R03" in page.inner_text(".finding.added")
    assert page.is_hidden("#selection-pop")
    # N: the next call of the queue (not this one).
    page.locator("#transcript").click(position={"x": 5, "y": 5})
    page.keyboard.press("n")
    page.wait_for_url(lambda url: "/ui/calls/" in url and not url.endswith("/call-c"))


def test_forced_password_change(ui: Watched, ui_server: UiServer) -> None:
    page = ui.page
    page.goto(ui_server.url + "/login")
    page.fill("#username", "newbie")
    page.fill("#password", PASSWORDS["inspector"])
    page.click("#login-form button[type=submit]")
    page.wait_for_url("**/password")
    assert "请先设置新密码" in page.inner_text("#pw-forced")
    page.goto(ui_server.url + "/ui/queue")  # every other page sends it back here
    page.wait_for_url("**/password")
    page.fill("#current", PASSWORDS["inspector"])
    page.fill("#new1", NEW_PASSWORD)
    page.fill("#new2", NEW_PASSWORD + "x")
    page.click("#password-form button[type=submit]")
    assert "不一致" in page.inner_text("#pw-error")
    shot(ui_server, page, "password-forced")
    page.fill("#new2", NEW_PASSWORD)
    page.click("#password-form button[type=submit]")
    page.wait_for_url("**/ui/queue")
    assert "newbie" in page.inner_text("header .who")


def test_admin_creates_disables_and_resets_an_account(ui: Watched, ui_server: UiServer) -> None:
    page = ui.page
    login(page, ui_server, "admin")
    page.click("#accounts-new summary")
    page.fill("#new-username", "zhang.san")
    page.fill("#new-display", "张三")
    page.select_option("#new-role", "agent")
    page.fill("#new-teams", "T1")
    page.fill("#new-agent", "A7")
    page.fill("#new-password", "Harbor-Gentle-3141!z")
    page.click("#accounts-new button[type=submit]")
    row = page.locator("#accounts-table tr[data-username='zhang.san']")
    row.wait_for()
    assert "待改密码" in row.inner_text() and "坐席" in row.inner_text()
    row.get_by_role("button", name="停用").click()
    row.locator(".tag.bad", has_text="已停用").wait_for()
    row.get_by_role("button", name="重置密码").click()
    form = row.locator("form.reset-form")
    form.wait_for()
    form.locator("input").fill("Copper-Meadow-2718!y")
    shot(ui_server, page, "admin-reset-inline")
    form.get_by_role("button", name="确认重置").click()
    page.locator(".toast.ok", has_text="zhang.san 的密码已重置").wait_for()
    assert form.is_hidden()


def test_alert_badge_updates_from_the_stream(ui: Watched, ui_server: UiServer) -> None:
    page = ui.page
    login(page, ui_server, "supervisor")
    page.goto(ui_server.url + "/ui/alerts")
    page.wait_for_selector("#alert-badge:not([hidden])")
    page.wait_for_function("QA.alertStream && QA.alertStream.readyState === 1")  # open
    before = int(page.inner_text("#alert-badge"))
    assert page.locator("#alerts-table tr[data-alert-id]").count() == before
    seed_alert(ui_server.service, "call-live")  # type: ignore[arg-type]  # as the worker does
    page.wait_for_function(f"document.getElementById('alert-badge').textContent === '{before + 1}'")
    page.locator("#alerts-table tr", has_text="call-live").wait_for()
    page.locator(".toast.warn", has_text="call-live").wait_for()
    shot(ui_server, page, "alerts-live")
