"""Faust's worker without its terminal spinner."""

from __future__ import annotations

import logging

import faust


class Worker(faust.Worker):
    """Faust's worker without its terminal spinner.

    To turn the spinner on every log call, Faust sets the root logger to DEBUG
    at its default level (warn) and leaves it there: every ``log.debug`` of
    Faust and mode then built a record that no handler wanted, one per
    changelog message in table recovery. A worker recovering 200,000 tracks
    began its backlog after 30.3 and 30.8 s without it, 34.5 and 35.8 s with it.
    """

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None
