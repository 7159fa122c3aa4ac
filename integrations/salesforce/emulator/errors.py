"""Errors the offline org answers with, in Salesforce's wording and shape."""

from __future__ import annotations


class ApiError(Exception):
    """An error from a /services/data resource: `[{"message", "errorCode"}]`.

    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm
    """

    def __init__(
        self,
        status: int,
        error_code: str,
        message: str,
        *,
        fields: list[str] | None = None,
    ) -> None:
        super().__init__(f"{error_code}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message
        self.fields = fields

    def body(self) -> list[dict[str, object]]:
        error: dict[str, object] = {
            "message": self.message,
            "errorCode": self.error_code,
        }
        if self.fields is not None:
            error["fields"] = self.fields
        return [error]


class OAuthError(Exception):
    """An error from /services/oauth2: `{"error", "error_description"}`."""

    def __init__(self, error: str, description: str, *, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def not_found() -> ApiError:
    return ApiError(404, "NOT_FOUND", "The requested resource does not exist")


def query_error(
    error_code: str, *, soql: str, line: int, column: int, reason: str
) -> ApiError:
    """Build a query error the way Salesforce writes it.

    The statement's line, a caret under the column, the row and column, then
    the reason.
    """
    lines = soql.split("\n")
    shown = lines[line - 1] if 0 < line <= len(lines) else soql
    caret = " " * (column - 1) + "^"
    message = f"\n{shown}\n{caret}\nERROR at Row:{line}:Column:{column}\n{reason}"
    return ApiError(400, error_code, message)
