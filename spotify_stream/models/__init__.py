"""The data contract: Avro schemas and everything derived from them.

``schemas/*.avsc`` is the only place a record's fields are written down; Arrow
schemas (``arrow``), the wire codec (``codec``), the block decoder (``block``) and
the encoded parts of an enriched track (``parts``) are all derived from it.
``deadletters`` is the dead-letter contract every layer above writes.
"""

from spotify_stream.models.codec import AvroCodec, DecodeError, codec_for
from spotify_stream.models.schemas import SCHEMAS, schema

__all__ = ["SCHEMAS", "AvroCodec", "DecodeError", "codec_for", "schema"]
