"""Why a row or message was rejected: the vocabulary of the dead-letter topic."""

from enum import StrEnum


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
