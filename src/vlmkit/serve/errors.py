"""The one error a request handler raises: an HTTP status plus an OpenAI-style error body."""

from __future__ import annotations

from ..errors import VlmkitError

# OpenAI's `type` field for each status we answer with, so clients branch on it as they do against OpenAI.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "invalid_request_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "server_error",
}


class ApiError(VlmkitError):
    """A request the server refuses; becomes `{"error": {"message", "type", "code", "param"}}` with `status`."""

    def __init__(self, message: str, *, status: int = 400, code: str = "invalid_request", param: str | None = None):
        super().__init__(message)
        self.message, self.status, self.code, self.param = message, status, code, param

    def body(self) -> dict:
        return error_body(self.message, self.status, self.code, self.param)


def error_body(message: str, status: int, code: str, param: str | None = None) -> dict:
    return {
        "error": {
            "message": message,
            "type": ERROR_TYPES.get(status, "invalid_request_error"),
            "code": code,
            "param": param,
        }
    }
