"""The one application error type: a stable code a client can branch on and a human message."""


class ApplicationError(Exception):
    """Raised by services when a request cannot be honoured; interfaces render it (4xx)."""

    code = "application_error"
    status = 400

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 fields: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.fields = fields or {}
