"""Which pages each role sees in the navigation, and where each role lands after login."""

from __future__ import annotations

from dataclasses import dataclass

from qa_service.accounts.roles import Role


@dataclass(frozen=True)
class NavItem:
    key: str
    label: str
    url: str
    roles: frozenset[Role]


_R = Role
NAV: tuple[NavItem, ...] = (
    NavItem("queue", "复核队列", "/ui/queue", frozenset({_R.INSPECTOR, _R.SUPERVISOR, _R.MANAGER})),
    NavItem("inbox", "反馈收件箱", "/ui/inbox", frozenset({_R.AGENT})),
    NavItem("appeals", "申诉裁决", "/ui/appeals", frozenset({_R.SUPERVISOR, _R.MANAGER})),
    NavItem("alerts", "实时告警", "/ui/alerts", frozenset({_R.SUPERVISOR, _R.MANAGER})),
    NavItem(
        "scorecard", "成绩单", "/ui/scorecard", frozenset({_R.AGENT, _R.SUPERVISOR, _R.MANAGER})
    ),
    NavItem("trends", "趋势看板", "/ui/trends", frozenset({_R.SUPERVISOR, _R.MANAGER})),
    NavItem(
        "complaints",
        "投诉登记",
        "/ui/complaints",
        frozenset({_R.SUPERVISOR, _R.MANAGER, _R.INSPECTOR}),
    ),
    NavItem("coaching", "辅导培训", "/ui/coaching", frozenset({_R.SUPERVISOR, _R.MANAGER})),
    NavItem("agency", "机构考核", "/ui/reports/agency", frozenset({_R.MANAGER})),
    NavItem("accounts", "账号管理", "/ui/admin/accounts", frozenset({_R.ADMIN})),
    NavItem("settings", "系统设置", "/ui/admin/settings", frozenset({_R.ADMIN})),
)

HOME: dict[Role, str] = {
    Role.INSPECTOR: "/ui/queue",
    Role.AGENT: "/ui/inbox",
    Role.SUPERVISOR: "/ui/appeals",
    Role.MANAGER: "/ui/trends",
    Role.ADMIN: "/ui/admin/accounts",
}


def nav_for(role: Role) -> list[NavItem]:
    """The navigation entries of ``role``, in menu order."""
    return [item for item in NAV if role in item.roles]


def roles_of(key: str) -> frozenset[Role]:
    """The roles that may open the page ``key``."""
    return next(item.roles for item in NAV if item.key == key)
