"""Errors that reach the user as one clear line, never as a traceback.

The CLI's exit codes: 1 when the world refused (a service unreachable or
refusing, a file unreadable), 2 when what was typed or configured is wrong
(an argument, a setting, a path), 130 when interrupted, 70 for our own bugs.
"""


class UserError(Exception):
    """A problem the user can fix (unreachable service, refused access, unreadable file).

    The CLI prints ``str(error)`` on one line and exits with ``exit_code``.
    """

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(UserError):
    """What the user typed or configured is wrong: an argument, a setting, a path."""

    exit_code = 2


class BrokerUnavailable(UserError):
    """Kafka cannot be reached, or the embedded broker cannot be started."""


def no_credentials(what: str) -> UserError:
    """The one wording for a missing AWS credential chain, whichever command meets it."""
    return UserError(
        f"no AWS credentials for {what}: set AWS_PROFILE or AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY, or run where an instance role applies"
    )
