"""The data-entry and report screens in Chromium: the complaint register's form and CSV
import, coaching trainings (supervisor), the roster import (admin) and the agency
evaluation report (manager). Dates are typed yyyy-mm-dd and checked before sending."""

from __future__ import annotations

import pytest
from conftest import UiServer, Watched, login, logout, shot

pytestmark = pytest.mark.browser

COMPLAINT_LIST = (
    "投诉编号,受理渠道,投诉等级,投诉类型,客户号,联系电话,受理时间,投诉内容\n"
    "UI-001,银行转办,严重,辱骂或态度恶劣,C901,,2026/11/02 09:30,客户称坐席辱骂\n"
    "UI-002,网点,特别大,其他,C902,,2026-11-04 10:00,等级写错\n"
).encode("gbk")
ROSTER = "工号,姓名,团队,机构\nA1,王芳,T1,AG1\nA8,李强,T1,AG1\nA9,,,\n".encode()


def test_complaint_form_and_import(ui: Watched, ui_server: UiServer) -> None:
    page = ui.page
    # An inspector: sees the whole register (a supervisor sees complaints whose calls are
    # in its teams, and these customers have no stored call).
    login(page, ui_server, "inspector")
    page.goto(ui_server.url + "/ui/complaints")
    page.click("#complaint-new summary")
    page.fill("#cf-day", "2026/11/20")
    page.fill("#cf-customer", "C900")
    page.click("#complaint-form button[type=submit]")
    page.locator(".toast.error", has_text="yyyy-mm-dd").wait_for()
    page.fill("#cf-day", "2026-11-20")
    page.fill("#cf-time", "10:15")
    page.fill("#cf-ref", "UI-000")
    page.select_option("#cf-level", "serious")
    page.fill("#cf-desc", "客户投诉坐席催收方式不当")
    page.click("#complaint-form button[type=submit]")
    page.locator(".toast.ok", has_text="投诉已登记").wait_for()
    page.locator("#complaints-table tr", has_text="UI-000").wait_for()
    assert "严重" in page.inner_text("#complaints-table tr:has-text('UI-000')")
    page.click("#complaint-import summary")
    page.set_input_files(
        "#ci-file",
        files=[{"name": "投诉清单.csv", "mimeType": "text/csv", "buffer": COMPLAINT_LIST}],
    )
    page.click("#complaint-import-form button[type=submit]")
    page.locator("#import-result", has_text="新增 1 条").wait_for()
    assert "第 3 行" in page.inner_text("#import-result")  # the unknown level, named
    page.locator("#complaints-table tr", has_text="UI-001").wait_for()
    shot(ui_server, page, "complaints-entry")


def test_supervisor_records_a_training(ui: Watched, ui_server: UiServer) -> None:
    page = ui.page
    login(page, ui_server, "supervisor")
    page.goto(ui_server.url + "/ui/coaching")
    page.wait_for_selector("#tr-rule option[value='P02']", state="attached")
    page.fill("#tr-agent", "A1")
    page.select_option("#tr-rule", "P02")
    page.fill("#tr-date", "2026-11-31")  # no such day
    page.click("#training-form button[type=submit]")
    page.locator(".toast.error", has_text="yyyy-mm-dd").wait_for()
    page.fill("#tr-date", "2026-11-10")
    page.fill("#tr-note", "文明用语专项培训")
    page.click("#training-form button[type=submit]")
    row = page.locator("#trainings-table tr", has_text="文明用语专项培训")
    row.wait_for()
    assert "P02" in row.inner_text() and "2026/11/10" in row.inner_text()
    shot(ui_server, page, "coaching")


def test_admin_imports_the_roster(ui: Watched, ui_server: UiServer) -> None:
    page = ui.page
    login(page, ui_server, "admin")
    page.click("#roster-import summary")
    page.set_input_files(
        "#roster-file", files=[{"name": "roster.csv", "mimeType": "text/csv", "buffer": ROSTER}]
    )
    page.click("#roster-form button[type=submit]")
    result = page.locator("#roster-result")
    result.locator("text=未导入 1 行").wait_for()
    assert "第 4 行" in result.inner_text()
    shot(ui_server, page, "roster-import")


def test_manager_reads_the_agency_report(ui: Watched, ui_server: UiServer) -> None:
    page = ui.page
    login(page, ui_server, "manager")
    page.click("header nav >> text=机构考核")
    row = page.locator("#agency-table tr[data-agency='AG1'][data-month='2026-11']")
    row.wait_for()
    assert row.locator("td.compliance").inner_text().endswith("%")
    page.fill("#ag-from", "2026-13-01")
    page.click("text=查询")
    assert "yyyy-mm-dd" in page.inner_text("p.error")
    shot(ui_server, page, "agency-report")
    logout(page)
    login(page, ui_server, "supervisor")  # not the supervisors' report: not in their menu
    assert "机构考核" not in page.inner_text("header nav")
