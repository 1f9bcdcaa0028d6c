"""The Glue jobs' entry point (``glue/jobs/*.py``): the command line, as Glue calls it.

Above the CLI, so that ``warehouse/`` (which the CLI imports) never imports it back.
(Not ``glue.py``: the wheel holds the ``glue/`` definitions as ``spotify_stream/glue``.)
"""

from __future__ import annotations

import os
import sys

from spotify_stream.cli import main
from spotify_stream.warehouse.etl import yesterday


def glue_main(job: str, argv: list[str] | None = None) -> None:
    """Entry point of the Glue job scripts: runs ``spotify-stream etl JOB --date D``.

    Glue passes the job's arguments as ``--name value`` pairs beside its own
    (``--JOB_NAME``, ...): ``--date`` is the day (default: yesterday) and each
    ``--SPOTIFY_STREAM_<NAME>`` becomes the setting of that name; the rest is ignored.
    """
    args = sys.argv[1:] if argv is None else argv
    pairs = {
        name: value
        for name, value in zip(args, [*args[1:], ""], strict=True)
        if name.startswith("--") and not value.startswith("--")
    }
    for name, value in pairs.items():
        if name.startswith("--SPOTIFY_STREAM_"):
            os.environ[name.removeprefix("--")] = value
    sys.argv = ["spotify-stream", "etl", job, "--date", pairs.get("--date") or f"{yesterday()}"]
    main()
