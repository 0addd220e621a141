"""The exception tree. Errors carry data; the message is built from it.

    BatchgenError
    ├── UsageError              bad command line or options            (exit 2)
    ├── ManifestError           the manifest has errors; nothing sent  (exit 2)
    ├── OutputLockedError       another run holds OUT                  (exit 75)
    ├── StoreError              the checkpoint cannot be read/written  (exit 1)
    ├── FatalApiError           401/405/406 (403/410 off a submit): stop (exit 3)
    │   └── ForeignOriginError  refused: the API key would leave the API's origin
    └── ApiError                one call failed; policy decides
        ├── ModelRefusedError   403/404/410 on submit: this model's items fail
        ├── RateLimitedError    429, with the reset time if given
        ├── ServerError         500/502/503/504
        ├── RejectedError       400: the body was refused; item fails
        ├── JobFailedError      422: the job ran and FAILED; item fails
        ├── RequestExpiredError 404 on a request id: record is gone
        ├── BadResponseError    2xx with a body we cannot use
        ├── TransportError      no HTTP answer (connection, timeout)
        └── DownloadError       an image download failed; ``retryable`` says if worth again

Item-level errors are recorded on the item and the run goes on; run-level errors stop
it. ``cli.EXIT_CODES`` maps classes to exit codes in one table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class BatchgenError(Exception):
    """Root of every error batchgen raises on purpose."""


class UsageError(BatchgenError):
    """Raised when options or arguments are wrong before any work starts."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One manifest problem, located by file, line, item and field."""

    file: str
    line: int | None
    item: str | None
    field: str | None
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        parts = [where]
        if self.item:
            parts.append(f"item {self.item}")
        if self.field:
            parts.append(f"field {self.field}")
        return f"{': '.join(parts)}: {self.severity}: {self.message}"


class ManifestError(BatchgenError):
    """Raised when a manifest has at least one error; carries every problem found."""

    def __init__(self, problems: list[Problem], total: int | None = None) -> None:
        self.problems = problems
        self.total = len(problems) if total is None else total
        first = str(problems[0]) if problems else "invalid manifest"
        more = f" (and {self.total - 1} more)" if self.total > 1 else ""
        super().__init__(first + more)


class OutputLockedError(BatchgenError):
    """Raised when another live run holds the lock on the output directory."""

    def __init__(self, out: str, pid: int | None = None) -> None:
        self.out = out
        self.pid = pid
        who = f" (pid {pid})" if pid else ""
        super().__init__(f"another batchgen run{who} is using {out}; wait or pick another -o")


class StoreError(BatchgenError):
    """Raised when the checkpoint store cannot be opened, read or written."""


class ApiError(BatchgenError):
    """Raised when one API call did not give a usable answer."""

    def __init__(self, message: str, *, status: int | None = None, url: str | None = None) -> None:
        self.status = status
        self.url = url
        prefix = f"HTTP {status}: " if status is not None else ""
        super().__init__(prefix + message)


class FatalApiError(ApiError):
    """Raised for answers that make every further submit pointless (401, 403, 406 ...)."""


class ModelRefusedError(ApiError):
    """Raised when a submit is refused for its model (unknown, not allowed, retired)."""


class RateLimitedError(ApiError):
    """Raised on 429; ``retry_after_s`` is the server's wait, if it gave one."""

    def __init__(
        self, message: str, *, retry_after_s: float | None, status: int | None = 429,
        url: str | None = None,
    ) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message, status=status, url=url)


class ServerError(ApiError):
    """Raised on 5xx: the call may be retried."""


class RejectedError(ApiError):
    """Raised on 400: the server refused the parameters; the item fails."""


class JobFailedError(ApiError):
    """Raised when a job ended FAILED (HTTP 422); ``error`` is the server's reason."""

    def __init__(
        self, message: str, *, status: int | None = 422, url: str | None = None,
        error: str | None = None, metrics: Mapping[str, Any] | None = None,
    ) -> None:
        self.error = message if error is None else error
        self.metrics: dict[str, Any] = dict(metrics or {})
        super().__init__(message, status=status, url=url)


class RequestExpiredError(ApiError):
    """Raised on 404 for a request id: the record expired or never existed."""


class BadResponseError(ApiError):
    """Raised when a 2xx answer lacks what the protocol promises (JSON, request_id ...)."""


class TransportError(ApiError):
    """Raised when no HTTP answer arrived; ``maybe_sent``: the body may have reached the server."""

    def __init__(self, message: str, *, maybe_sent: bool, url: str | None = None) -> None:
        self.maybe_sent = maybe_sent
        super().__init__(message, url=url)


class ForeignOriginError(FatalApiError):
    """Raised instead of sending the API key to a URL outside the API's own origin."""


class DownloadError(ApiError):
    """Raised when an image download fails; ``retryable``: a new attempt may succeed."""

    def __init__(
        self, message: str, *, retryable: bool, status: int | None = None, url: str | None = None,
    ) -> None:
        self.retryable = retryable
        super().__init__(message, status=status, url=url)
