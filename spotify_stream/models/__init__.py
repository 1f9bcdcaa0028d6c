"""The data contract: Avro schemas and everything derived from them.

``schemas/*.avsc`` is the only place a record's fields are written down; Faust
records (``records``), Arrow schemas (``arrow``) and the wire codec (``codec``)
are all derived from it.
"""

from spotify_stream.models.codec import AvroCodec, DecodeError, codec_for
from spotify_stream.models.schemas import SCHEMAS, schema

__all__ = ["SCHEMAS", "AvroCodec", "DecodeError", "codec_for", "schema"]
