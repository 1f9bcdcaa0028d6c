"""Errors that reach the user as one clear line, never as a traceback."""


class UserError(Exception):
    """A problem the user can fix (bad argument, unreachable service, missing file).

    The CLI prints ``str(error)`` on one line and exits with ``exit_code``.
    """

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class BrokerUnavailable(UserError):
    """Kafka cannot be reached, or the embedded broker cannot be started."""
