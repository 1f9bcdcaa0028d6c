"""The join-retry topic's messages: what each asks of the partition's owner."""

from __future__ import annotations

from enum import Enum


class Retry(bytes, Enum):
    """What a message of the join-retry topic asks of the partition's owner (its value;
    its key is the track id, but for ``LABEL``)."""

    DIMENSION = b"dimension"  # a dimension came or changed: join the track again
    EXPIRE = b"expire"  # the track waited its maximum: join it, complete or not
    LABEL = b"label"  # label, in bulk, the partition's tracks emitted before the first model


#: The key of a ``LABEL`` retry (one message per partition, not per track).
LABEL_KEY = b"\x00label"
