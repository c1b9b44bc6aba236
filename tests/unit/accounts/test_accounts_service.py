"""Accounts on SQLite and PostgreSQL: logins, lockout, password age and history, sessions,
API tokens, disabling. Time is injected (``now``), never slept."""

from __future__ import annotations

from datetime import timedelta

import pytest
from account_helpers import STRONG, T0
from argon2 import PasswordHasher
from sqlalchemy import Engine, MetaData, select
from sqlalchemy.orm import Session, sessionmaker

from qa_service.accounts import passwords
from qa_service.accounts.roles import Permission, Principal, Role
from qa_service.accounts.service import (
    LoginResult,
    UserAccount,
    admin_reset_password,
    authenticate,
    change_password,
    check_csrf,
    create_api_token,
    create_user,
    csrf_token_for,
    disable_user,
    enable_user,
    end_session,
    ensure_password_current,
    find_user,
    list_api_tokens,
    list_users,
    login,
    resolve_api_token,
    resolve_session,
    revoke_api_token,
    start_session,
    update_user,
)
from qa_service.db.tables import ApiTokenRow, AuthSessionRow, UserRow
from qa_service.errors import (
    AccountDisabled,
    AccountLocked,
    AuthenticationFailed,
    Conflict,
    InputError,
    PasswordExpired,
    PasswordPolicyError,
)
from qa_service.settings import Settings

PASSWORD = STRONG[0]


def _add(
    sessions: sessionmaker[Session],
    settings: Settings,
    username: str = "zhangsan",
    role: Role = Role.INSPECTOR,
    **kwargs: object,
) -> UserAccount:
    kwargs.setdefault("password", PASSWORD)
    kwargs.setdefault("now", T0)
    with sessions.begin() as session:
        return create_user(
            session,
            username=username,
            role=role,
            settings=settings,
            **kwargs,  # type: ignore[arg-type]
        )


def _login(
    sessions: sessionmaker[Session], settings: Settings, password: str, minutes: float
) -> LoginResult:
    return login(
        sessions,
        username="zhangsan",
        password=password,
        now=T0 + timedelta(minutes=minutes),
        settings=settings,
    )


# --- users and logins ------------------------------------------------------------------


def test_create_and_log_in(sessions: sessionmaker[Session], settings: Settings) -> None:
    account = _add(sessions, settings, "ZhangSan", display_name="张三", team_ids=["一组", "一组"])
    assert account.username == "zhangsan" and account.display_name == "张三"
    assert account.team_ids == {"一组"}
    result = login(sessions, username=" ZHANGSAN ", password=PASSWORD, now=T0, settings=settings)
    principal = result.principal
    assert (principal.username, principal.role, principal.team_ids) == (
        "zhangsan",
        Role.INSPECTOR,
        {"一组"},
    )
    assert principal.session_id is not None and not principal.must_change_password
    assert principal.can(Permission.REVIEW_CALLS) and not principal.can(Permission.MANAGE_ACCOUNTS)


def test_unknown_user_and_wrong_password_read_the_same(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    _add(sessions, settings)
    with pytest.raises(AuthenticationFailed) as unknown:
        login(sessions, username="lisi", password=PASSWORD, now=T0, settings=settings)
    with pytest.raises(AuthenticationFailed) as wrong:
        login(sessions, username="zhangsan", password=STRONG[1], now=T0, settings=settings)
    assert type(unknown.value) is type(wrong.value) is AuthenticationFailed
    assert (
        unknown.value.message
        == wrong.value.message
        == "用户名或密码错误 / wrong user name or password"
    )


def test_duplicate_user_name_is_a_conflict(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    _add(sessions, settings)
    with pytest.raises(Conflict):
        _add(sessions, settings, "ZHANGSAN", password=STRONG[1])


def test_agent_account_needs_its_agent_id(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    with pytest.raises(InputError, match="坐席工号"):
        _add(sessions, settings, "a07", Role.AGENT)
    assert _add(sessions, settings, "a07", Role.AGENT, agent_id="A07").agent_id == "A07"


def test_weak_password_creates_no_account(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    with pytest.raises(PasswordPolicyError):
        _add(sessions, settings, password="Password1234")
    with sessions() as session:
        assert find_user(session, username="zhangsan") is None


# --- lockout ---------------------------------------------------------------------------


def test_five_failures_lock_the_account_for_15_minutes(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    _add(sessions, settings)
    for minute in range(5):  # each in its own transaction, as the API does it
        with pytest.raises(AuthenticationFailed):
            _login(sessions, settings, STRONG[1], minute)
    # Locked: even the right password is refused, with the time left.
    with pytest.raises(AccountLocked) as locked:
        _login(sessions, settings, PASSWORD, 4 + 14.9)
    assert "锁定" in locked.value.message and "1 分钟" in locked.value.message
    # 15 minutes after the fifth failure it opens again.
    assert _login(sessions, settings, PASSWORD, 4 + 15).principal.username == "zhangsan"


def test_four_failures_do_not_lock_and_a_success_resets_the_count(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    _add(sessions, settings)
    for round_start in (0, 10):
        for minute in range(4):
            with pytest.raises(AuthenticationFailed):
                _login(sessions, settings, STRONG[1], round_start + minute)
        _login(sessions, settings, PASSWORD, round_start + 5)


def test_authenticate_flushes_the_failure_for_the_caller_to_commit(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    _add(sessions, settings)
    with sessions() as session:
        for _ in range(5):
            with pytest.raises(AuthenticationFailed):
                authenticate(session, username="zhangsan", password="x", now=T0, settings=settings)
        session.commit()
    with pytest.raises(AccountLocked):
        _login(sessions, settings, PASSWORD, 1)


# --- password age, reset, change and history ------------------------------------------


def test_password_older_than_30_days_must_be_changed(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    account = _add(sessions, settings)
    fresh = login(
        sessions, username="zhangsan", password=PASSWORD, now=T0 + timedelta(days=29),
        settings=settings,
    ).principal  # fmt: skip
    assert not fresh.must_change_password
    ensure_password_current(fresh)
    old = login(
        sessions, username="zhangsan", password=PASSWORD, now=T0 + timedelta(days=30),
        settings=settings,
    ).principal  # fmt: skip
    assert old.must_change_password
    with pytest.raises(PasswordExpired):
        ensure_password_current(old)
    with sessions.begin() as session:
        change_password(
            session, user_id=account.user_id, old_password=PASSWORD, new_password=STRONG[1],
            now=T0 + timedelta(days=30), keep_session_id=old.session_id, settings=settings,
        )  # fmt: skip
    with sessions.begin() as session:
        # The session it was changed from goes on, no longer restricted.
        principal = resolve_session(
            session, token=_token_of(sessions, settings, STRONG[1], days=30), now=T0 +
            timedelta(days=30), settings=settings,
        )  # fmt: skip
    assert not principal.must_change_password


def _token_of(sessions: sessionmaker[Session], settings: Settings, password: str, days: int) -> str:
    return login(
        sessions, username="zhangsan", password=password, now=T0 + timedelta(days=days),
        settings=settings,
    ).session_token  # fmt: skip


def test_last_three_passwords_cannot_be_reused(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    account = _add(sessions, settings)

    def change(old: str, new: str) -> None:
        with sessions.begin() as session:
            change_password(
                session, user_id=account.user_id, old_password=old, new_password=new,
                now=T0, settings=settings,
            )  # fmt: skip

    with pytest.raises(PasswordPolicyError, match="最近 3 次"):
        change(PASSWORD, PASSWORD)  # the current one
    change(STRONG[0], STRONG[1])
    change(STRONG[1], STRONG[2])
    with pytest.raises(PasswordPolicyError, match="最近 3 次"):
        change(STRONG[2], STRONG[0])  # the last three are 2, 1, 0
    change(STRONG[2], STRONG[3])
    change(STRONG[3], STRONG[0])  # now 3, 2, 1: 0 is allowed again


def test_changing_needs_the_current_password(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    account = _add(sessions, settings)
    with sessions.begin() as session, pytest.raises(AuthenticationFailed):
        change_password(
            session, user_id=account.user_id, old_password=STRONG[2], new_password=STRONG[1],
            settings=settings,
        )  # fmt: skip


def test_admin_reset_forces_a_change_and_ends_sessions(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    account = _add(sessions, settings)
    token = login(sessions, username="zhangsan", password=PASSWORD, now=T0, settings=settings)
    with sessions.begin() as session:
        admin_reset_password(
            session, user_id=account.user_id, new_password=STRONG[1], now=T0, settings=settings
        )
    with sessions.begin() as session, pytest.raises(AuthenticationFailed):
        resolve_session(session, token=token.session_token, now=T0, settings=settings)
    principal = login(
        sessions, username="zhangsan", password=STRONG[1], now=T0, settings=settings
    ).principal
    assert principal.must_change_password


def test_login_rehashes_when_the_parameters_changed(
    sessions: sessionmaker[Session], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _add(sessions, settings)
    monkeypatch.setattr(passwords, "_HASHER", PasswordHasher(time_cost=2, memory_cost=1024))
    login(sessions, username="zhangsan", password=PASSWORD, now=T0, settings=settings)
    with sessions() as session:
        stored = session.scalars(select(UserRow.password_hash)).one()
    assert "m=1024,t=2" in stored
    login(sessions, username="zhangsan", password=PASSWORD, now=T0, settings=settings)


# --- sessions ------------------------------------------------------------------------


def test_session_ends_after_15_idle_minutes(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    _add(sessions, settings)
    token = login(sessions, username="zhangsan", password=PASSWORD, now=T0, settings=settings)

    def resolve(minutes: float) -> Principal:
        with sessions.begin() as session:
            return resolve_session(
                session, token=token.session_token, now=T0 + timedelta(minutes=minutes),
                settings=settings,
            )  # fmt: skip

    resolve(14)  # activity at 14 minutes keeps it alive ...
    resolve(28)  # ... so 14 minutes later it still lives
    resolve(28 + 14.9)
    with pytest.raises(AuthenticationFailed, match="超时"):
        resolve(28 + 14.9 + 15)
    with pytest.raises(AuthenticationFailed):
        resolve(28 + 14.9 + 16)  # a request after the timeout does not revive it
    with sessions.begin() as session:
        # Ended in the database too when the caller commits (the API's error path may not).
        with pytest.raises(AuthenticationFailed):
            resolve_session(session, token=token.session_token, now=T0 + timedelta(hours=2))
        session.commit()
    with sessions() as session:
        assert session.scalars(select(AuthSessionRow.end_reason)).one() == "idle"


def test_logout_ends_the_session(sessions: sessionmaker[Session], settings: Settings) -> None:
    _add(sessions, settings)
    result = login(sessions, username="zhangsan", password=PASSWORD, now=T0, settings=settings)
    with sessions.begin() as session:
        assert result.principal.session_id is not None
        assert end_session(session, session_id=result.principal.session_id, now=T0)
        assert not end_session(session, session_id=result.principal.session_id, now=T0)
    with sessions.begin() as session, pytest.raises(AuthenticationFailed):
        resolve_session(session, token=result.session_token, now=T0, settings=settings)


def test_csrf_token_belongs_to_its_session(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    account = _add(sessions, settings)
    with sessions.begin() as session:
        token, csrf = start_session(session, user_id=account.user_id, now=T0, settings=settings)
        other_token, other_csrf = start_session(
            session, user_id=account.user_id, now=T0, settings=settings
        )
        principal = resolve_session(session, token=token, now=T0, settings=settings)
        row = session.scalars(
            select(AuthSessionRow).where(AuthSessionRow.id == principal.session_id)
        ).one()
    assert token != other_token and csrf != other_csrf
    assert check_csrf(principal, csrf) and check_csrf(row, csrf)
    assert not check_csrf(principal, other_csrf)
    assert not check_csrf(principal, None) and not check_csrf(principal, "")
    assert csrf_token_for(token, settings=settings) == csrf  # pages can render it again
    assert "csrf" not in repr(principal).lower()


def test_role_and_team_changes_apply_on_the_next_request(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    account = _add(sessions, settings, role=Role.SUPERVISOR, team_ids=["T1"])
    token = login(sessions, username="zhangsan", password=PASSWORD, now=T0, settings=settings)
    with sessions.begin() as session:
        update_user(session, user_id=account.user_id, team_ids=["T2", "T3"], role="manager")
    with sessions.begin() as session:
        principal = resolve_session(session, token=token.session_token, now=T0, settings=settings)
    assert principal.role is Role.MANAGER and principal.team_ids == {"T2", "T3"}


# --- API tokens and disabling --------------------------------------------------------


def test_api_token_acts_as_its_user_until_revoked(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    account = _add(sessions, settings)
    with sessions.begin() as session:
        token = create_api_token(session, user_id=account.user_id, name="录音系统")
    assert token.startswith("qas_") and len(token) > 40
    # A machine client is not stopped by the password's age.
    late = T0 + timedelta(days=90)
    with sessions.begin() as session:
        principal = resolve_api_token(session, token=token, now=late, settings=settings)
        assert principal.token_id is not None and principal.session_id is None
        assert not principal.must_change_password and not check_csrf(principal, "x")
        (info,) = list_api_tokens(session, user_id=account.user_id)
        assert info.name == "录音系统" and token.startswith(info.prefix)
        assert revoke_api_token(session, token_id=principal.token_id, now=late)
    with sessions.begin() as session, pytest.raises(AuthenticationFailed):
        resolve_api_token(session, token=token, now=late, settings=settings)
    with sessions.begin() as session:
        for bad in ("qas_guess", "not-a-token", token + "x"):
            with pytest.raises(AuthenticationFailed):
                resolve_api_token(session, token=bad, settings=settings)


def test_disabling_ends_sessions_and_tokens_at_once(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    account = _add(sessions, settings)
    browser = login(sessions, username="zhangsan", password=PASSWORD, now=T0, settings=settings)
    with sessions.begin() as session:
        token = create_api_token(session, user_id=account.user_id, name="script")
    with sessions.begin() as session:
        assert disable_user(session, user_id=account.user_id, now=T0) == (1, 1)
    # One second later, well inside the idle window: both refused.
    soon = T0 + timedelta(seconds=1)
    with sessions.begin() as session:
        with pytest.raises(AuthenticationFailed):
            resolve_session(session, token=browser.session_token, now=soon, settings=settings)
        with pytest.raises(AuthenticationFailed):
            resolve_api_token(session, token=token, now=soon, settings=settings)
        assert session.scalars(select(AuthSessionRow.end_reason)).one() == "disabled"
        assert session.scalars(select(ApiTokenRow.revoked_at)).one() == T0
    with pytest.raises(AccountDisabled):
        login(sessions, username="zhangsan", password=PASSWORD, now=soon, settings=settings)
    with sessions.begin() as session:
        (listed,) = list_users(session)
        assert listed.disabled
        enable_user(session, user_id=account.user_id)
    login(sessions, username="zhangsan", password=PASSWORD, now=soon, settings=settings)
    with sessions.begin() as session, pytest.raises(AuthenticationFailed):
        resolve_api_token(session, token=token, now=soon, settings=settings)  # stays revoked


def test_no_token_or_password_is_stored_in_clear(
    engine: Engine, sessions: sessionmaker[Session], settings: Settings
) -> None:
    account = _add(sessions, settings)
    browser = login(sessions, username="zhangsan", password=PASSWORD, now=T0, settings=settings)
    with sessions.begin() as session:
        api_token = create_api_token(session, user_id=account.user_id, name="script")
    secrets = {api_token, api_token.removeprefix("qas_"), browser.session_token,
               browser.csrf_token, PASSWORD}  # fmt: skip
    metadata = MetaData()
    metadata.reflect(engine)
    dump: list[str] = []
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            dump.extend(str(v) for row in connection.execute(table.select()) for v in row)
    assert any("argon2id" in cell for cell in dump)  # the dump did read the accounts
    leaks = [s for s in secrets for cell in dump if s in cell]
    assert leaks == []
