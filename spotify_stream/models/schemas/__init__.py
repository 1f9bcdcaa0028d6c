"""Loads the Avro schemas shipped beside this file.

Files directly here are the current version of each record; ``history/`` (when
present) holds earlier versions, known to readers so old messages still decode.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import fastavro

_HERE = resources.files(__name__)


def _load(name: str) -> dict[str, Any]:
    return json.loads(_HERE.joinpath(name).read_text(encoding="utf-8"))


def _parse(raw: dict[str, Any]) -> dict[str, Any]:
    # The write hint spares fastavro a re-parse on every write (a third of its
    # cost); it is left out of the canonical form, so fingerprints are unchanged.
    return fastavro.parse_schema(raw)


#: Current schemas by short record name ("Artist", "Track", ...).
SCHEMAS: dict[str, dict[str, Any]] = {}
for _entry in sorted(_HERE.iterdir(), key=lambda e: e.name):
    if _entry.name.endswith(".avsc"):
        _parsed = _parse(_load(_entry.name))
        SCHEMAS[_parsed["name"].rsplit(".", 1)[-1]] = _parsed

#: Earlier versions, readable but never written.
HISTORY: list[dict[str, Any]] = []
if _HERE.joinpath("history").is_dir():
    for _entry in sorted(_HERE.joinpath("history").iterdir(), key=lambda e: e.name):
        if _entry.name.endswith(".avsc"):
            HISTORY.append(_parse(json.loads(_entry.read_text(encoding="utf-8"))))


def schema(name: str) -> dict[str, Any]:
    """The current parsed schema of record ``name`` (e.g. ``"Track"``)."""
    try:
        return SCHEMAS[name]
    except KeyError:
        raise KeyError(f"no schema named {name!r}; known: {', '.join(SCHEMAS)}") from None
