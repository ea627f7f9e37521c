"""The arena's refusals: each carries the HTTP status the web app answers with; the CLI prints the message."""

from qwen_image2.errors import UserError


class ArenaError(UserError):
    """A request the arena refuses; `status` is its HTTP code (4xx), the message says what to fix."""

    def __init__(self, status: int, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
