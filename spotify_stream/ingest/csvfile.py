"""Reads a CSV file record by record, keeping what a dead letter needs.

Every record carries its physical start line, its 1-based data row number and,
on demand, its raw bytes, so a rejected row can be reported exactly. Structural
problems (wrong field count, undecodable bytes, oversized fields, a truncated
last record) come back as records with an ``error`` instead of exceptions: one
bad row never stops a file.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from spotify_stream.models.deadletters import Reason

_BOM = b"\xef\xbb\xbf"


class HeaderError(ValueError):
    """The file has no usable header; nothing in it can be read."""


@dataclass(slots=True)
class CsvRecord:
    line: int  # physical line where the record starts (header is line 1)
    row: int  # 1-based data record number
    fields: list[str]
    error: Reason | None = None
    detail: str | None = None


class CsvFile:
    """One CSV stream: ``header`` after construction, then iterate records.

    ``raw()`` returns the bytes of the record last yielded; ``bytes_read`` the
    position in the stream (for progress).
    """

    def __init__(self, stream: BinaryIO, name: str, max_field_chars: int) -> None:
        self.name = name
        self.bytes_read = 0
        self._stream = stream
        self._raw: list[bytes] = []
        self._bad_encoding = False
        csv.field_size_limit(max_field_chars)
        self._max_field = max_field_chars
        self._reader = csv.reader(self._lines(), strict=True)
        self.header = self._read_header()

    def _lines(self) -> Iterator[str]:
        first = True
        for chunk in self._stream:
            if first:
                first = False
                if chunk.startswith(_BOM):
                    self.bytes_read += len(_BOM)
                    chunk = chunk[len(_BOM) :]
            self.bytes_read += len(chunk)
            self._raw.append(chunk)
            try:
                yield chunk.decode("utf-8")
            except UnicodeDecodeError:
                self._bad_encoding = True
                yield chunk.decode("utf-8", "replace")

    def _read_header(self) -> list[str]:
        try:
            for fields in self._reader:
                if fields:
                    if self._bad_encoding:
                        raise HeaderError(f"{self.name}: header is not UTF-8 text")
                    return [f.strip() for f in fields]
        except csv.Error as exc:
            raise HeaderError(f"{self.name}: unreadable header ({exc})") from None
        raise HeaderError(f"{self.name}: empty file (no header)")

    def raw(self) -> bytes:
        return b"".join(self._raw)

    def __iter__(self) -> Iterator[CsvRecord]:
        reader = self._reader
        width = len(self.header)
        row = 0
        while True:
            start = reader.line_num + 1
            self._raw.clear()
            self._bad_encoding = False
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                row += 1
                message = str(exc)
                if "field larger than field limit" in message:
                    yield CsvRecord(
                        start,
                        row,
                        [],
                        Reason.FIELD_TOO_LARGE,
                        f"a field is longer than {self._max_field} characters",
                    )
                else:
                    yield CsvRecord(start, row, [], Reason.MALFORMED_ROW, message)
                continue
            if not fields:  # blank line: no data, nothing to report
                continue
            row += 1
            if self._bad_encoding:
                yield CsvRecord(start, row, fields, Reason.BAD_ENCODING, "bytes are not UTF-8")
            elif len(fields) != width:
                yield CsvRecord(
                    start,
                    row,
                    fields,
                    Reason.MALFORMED_ROW,
                    f"expected {width} fields, found {len(fields)}",
                )
            else:
                yield CsvRecord(start, row, fields)
