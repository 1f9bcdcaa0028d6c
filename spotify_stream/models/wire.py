"""The header of Avro's single-object encoding: ``C3 01`` and the writer schema's
8-byte fingerprint. Apart from ``codec`` so that the block decoder, which
``codec`` uses, can read it without importing ``codec`` back."""

MAGIC = b"\xc3\x01"
HEADER_SIZE = len(MAGIC) + 8
