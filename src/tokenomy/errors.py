"""Gateway errors and their rendering in the OpenAI and Anthropic wire formats.

Every failure a client can see is a :class:`GatewayError`. The HTTP edge renders it in the
format of the API that was called, so a client's SDK raises its usual exception type.
"""

from __future__ import annotations

from typing import Any

# OpenAI error ``type`` values and the Anthropic ``error.type`` each corresponds to.
_ANTHROPIC_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "api_error",
    529: "overloaded_error",
}


class GatewayError(Exception):
    """An error with an HTTP status, an OpenAI error type and a client-safe message."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code
        self.headers = headers or {}

    def openai_body(self) -> dict[str, Any]:
        """The OpenAI error object: ``{"error": {"message", "type", "param", "code"}}``."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def anthropic_body(self) -> dict[str, Any]:
        """The Anthropic error object: ``{"type": "error", "error": {"type", "message"}}``."""
        kind = _ANTHROPIC_TYPES.get(self.status, "api_error" if self.status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": self.message}}

    def __repr__(self) -> str:
        return f"GatewayError({self.status}, {self.type!r}, {self.message!r})"


def invalid_request(message: str, param: str | None = None, code: str | None = None) -> GatewayError:
    """400: the request is malformed or has a wrong value."""
    return GatewayError(400, message, "invalid_request_error", param=param, code=code)


def not_found(message: str, param: str | None = None, code: str | None = None) -> GatewayError:
    """404: an unknown model or route."""
    return GatewayError(404, message, "invalid_request_error", param=param, code=code)


def authentication_error(message: str) -> GatewayError:
    """401: a missing or wrong API key."""
    return GatewayError(401, message, "authentication_error", code="invalid_api_key")


def overloaded(message: str, retry_after: float) -> GatewayError:
    """503: the gateway sheds load instead of queueing without bound."""
    return GatewayError(
        503,
        message,
        "server_overloaded",
        code="overloaded",
        headers={"retry-after": str(max(1, round(retry_after)))},
    )


def internal_error() -> GatewayError:
    """500: an unexpected failure; the message never carries internals."""
    return GatewayError(500, "The gateway failed to handle this request.", "server_error", code="internal_error")
