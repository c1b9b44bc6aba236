"""The one place where errors become HTTP responses.

Every refusal the API gives has the same body, ``{"error": {"code", "message", "detail"}}``:
``message`` in Chinese for the people who read it, ``detail`` in English. The service's
errors carry "中文 / English" messages; this module splits them and picks the status from
the error's class, so no route decides a status code for an error itself.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from qa_service import errors as e

logger = logging.getLogger(__name__)

# Most specific first: the first class an error is an instance of decides its status.
_STATUS: tuple[tuple[type[e.QAServiceError], int], ...] = (
    (e.AccountLocked, 423),
    (e.TooManyRequests, 429),
    (e.AuthenticationFailed, 401),
    (e.PasswordExpired, 403),
    (e.PermissionDenied, 403),
    (e.CallNotFound, 404),
    (e.AlertNotFound, 404),
    (e.Conflict, 409),
    (e.RecordingTooLarge, 413),
    (e.RangeNotSatisfiable, 416),
    (e.UnsupportedFormat, 415),
    (e.AudioDecodeError, 415),
    (e.EmptyFile, 415),
    (e.InputError, 422),
    (e.QueueUnavailable, 503),
    (e.StorageError, 503),
)

# Chinese wording for the framework's own refusals (unknown route, wrong method ...).
_HTTP_CODES: dict[int, tuple[str, str]] = {
    400: ("bad_request", "请求无效"),
    401: ("authentication_failed", "请先登录"),
    403: ("permission_denied", "没有权限执行此操作"),
    404: ("not_found", "找不到请求的资源"),
    405: ("method_not_allowed", "此地址不支持该请求方法"),
    413: ("request_too_large", "请求内容过大"),
    415: ("unsupported_media_type", "不支持的内容类型"),
}


def status_for(exc: e.QAServiceError) -> int:
    """The HTTP status of a service error (500 for anything not listed)."""
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def error_body(code: str, message: str, detail: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if detail:
        error["detail"] = detail
    return {"error": error}


def _split(message: str) -> tuple[str, str]:
    zh, sep, en = message.partition(" / ")
    return (zh, en) if sep else (message, message)


def error_response(exc: e.QAServiceError, headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON response for a service error."""
    status = status_for(exc)
    if status >= 500:
        logger.error("%s: %s", exc.code, exc.message, exc_info=exc)
    zh, en = _split(exc.message)
    if isinstance(exc, e.RangeNotSatisfiable) and "size" in exc.context:
        headers = {**(headers or {}), "Content-Range": f"bytes */{exc.context['size']}"}
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    if isinstance(exc, e.TooManyRequests) and "retry_after_s" in exc.context:
        headers = {**(headers or {}), "Retry-After": str(exc.context["retry_after_s"])}
    return JSONResponse(error_body(exc.code, zh, en), status_code=status, headers=headers)


async def _service_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, e.QAServiceError)
    return error_response(exc)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = exc.errors()
    first = problems[0] if problems else {}
    where = ".".join(str(part) for part in first.get("loc", ()))
    en = f"{where}: {first.get('msg', 'invalid request')}"
    if len(problems) > 1:
        en += f" (and {len(problems) - 1} more)"
    return JSONResponse(
        error_body("invalid_request", f"请求参数无效：{where}", en), status_code=422
    )


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code, zh = _HTTP_CODES.get(exc.status_code, ("http_error", "请求失败"))
    return JSONResponse(
        error_body(code, zh, str(exc.detail)),
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


async def _database_down(_request: Request, exc: Exception) -> JSONResponse:
    # A restarted or unreachable database is the server's temporary trouble, not a bug:
    # 503 tells clients to retry (uploads are idempotent by their bytes).
    logger.error("database unavailable: %s", exc)
    return JSONResponse(
        error_body(
            "database_unavailable", "数据库暂时不可用，请稍后重试", "the database is unavailable"
        ),
        status_code=503,
        headers={"Retry-After": "5"},
    )


async def _out_of_range(_request: Request, exc: Exception) -> JSONResponse:
    # An id or number past what the database column holds (e.g. a 30-digit path id):
    # the request's fault. SQLite's driver raises OverflowError, PostgreSQL a DataError.
    return JSONResponse(
        error_body("invalid_request", "请求参数超出范围", f"a value is out of range: {exc}"),
        status_code=422,
    )


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error", exc_info=exc)
    return JSONResponse(
        error_body("internal_error", "服务器内部错误，请联系管理员", "internal server error"),
        status_code=500,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every refusal the JSON error shape."""
    app.add_exception_handler(e.QAServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OperationalError, _database_down)
    app.add_exception_handler(OverflowError, _out_of_range)
    app.add_exception_handler(DataError, _out_of_range)
    app.add_exception_handler(Exception, _unexpected)
