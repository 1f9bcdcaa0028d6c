"""The dead-letter contract: why a row or message was rejected, and the record that
says so (``schemas/dead_letter.avsc``). The producer, the agents and the lake sink
all write it; it lives here, below them."""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any


class Reason(StrEnum):
    # CSV structure
    MALFORMED_ROW = "malformed_row"
    BAD_ENCODING = "bad_encoding"
    FIELD_TOO_LARGE = "field_too_large"
    # content
    MISSING_ID = "missing_id"
    BAD_VALUE = "bad_value"
    BAD_DATE = "bad_date"
    POPULARITY_OUT_OF_RANGE = "popularity_out_of_range"
    NEGATIVE_DURATION = "negative_duration"
    TEMPO_NOT_POSITIVE = "tempo_not_positive"
    FEATURE_OUT_OF_RANGE = "feature_out_of_range"
    DUPLICATE_ID = "duplicate_id"
    # Kafka messages (worker agents)
    UNDECODABLE = "undecodable"
    WRONG_RECORD_TYPE = "wrong_record_type"
    MISROUTED = "misrouted"
    FUTURE_EVENT_TIME = "future_event_time"
    # lake sink
    NOT_PARQUET = "not_parquet"


def dead_letter(
    reason: str,
    detail: str | None,
    source: str,
    raw: bytes,
    max_raw: int,
    *,
    line: int | None = None,
    row: int | None = None,
    partition: int | None = None,
    offset: int | None = None,
) -> dict[str, Any]:
    """A DeadLetter record; ``raw`` is cut at ``max_raw`` bytes, its full size kept."""
    return {
        "reason": str(reason),
        "detail": detail,
        "source": source,
        "line": line,
        "row": row,
        "partition": partition,
        "offset": offset,
        "raw": raw[:max_raw],
        "raw_size": len(raw),
        "failed_at": int(time.time() * 1000),
    }
