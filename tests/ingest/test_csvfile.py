import io

import pytest

from spotify_stream.ingest.csvfile import CsvFile, HeaderError
from spotify_stream.models.deadletters import Reason


def read(data: bytes, max_field: int = 1 << 20) -> tuple[CsvFile, list]:
    csv_file = CsvFile(io.BytesIO(data), "f.csv", max_field)
    records = []
    for record in csv_file:
        records.append((record.line, record.row, record.fields, record.error, csv_file.raw()))
    return csv_file, records


def test_bom_crlf_quotes_embedded_newlines_and_non_ascii():
    data = (
        '\ufeffid,name,n\r\n1,"Sigur Rós, ""live""",3\r\n2,"two\r\nlines",4\r\n3,日本語,5\r\n'
    ).encode()
    csv_file, records = read(data)
    assert csv_file.header == ["id", "name", "n"]
    assert [(line, row, fields) for line, row, fields, _, _ in records] == [
        (2, 1, ["1", 'Sigur Rós, "live"', "3"]),
        (3, 2, ["2", "two\r\nlines", "4"]),
        (5, 3, ["3", "日本語", "5"]),
    ]
    assert records[1][4] == b'2,"two\r\nlines",4\r\n'
    assert csv_file.bytes_read == len(data)


def test_wrong_field_count_is_a_malformed_row_and_reading_goes_on():
    _, records = read(b"a,b\n1,2\n1,2,3\n4\n5,6\n")
    assert [(r[1], r[3]) for r in records] == [
        (1, None),
        (2, Reason.MALFORMED_ROW),
        (3, Reason.MALFORMED_ROW),
        (4, None),
    ]
    assert records[1][4] == b"1,2,3\n"


def test_undecodable_bytes_are_a_bad_encoding_row():
    _, records = read(b"a,b\n1,\xff\xfe\n2,ok\n")
    assert [(r[3], r[4]) for r in records] == [
        (Reason.BAD_ENCODING, b"1,\xff\xfe\n"),
        (None, b"2,ok\n"),
    ]


def test_oversized_field_is_rejected_and_the_next_row_survives():
    _, records = read(b"a,b\n1," + b"x" * 5000 + b"\n2,y\n", max_field=1000)
    assert records[0][3] == Reason.FIELD_TOO_LARGE
    assert len(records[0][4]) == 5003
    assert records[1][2:4] == (["2", "y"], None)


def test_truncated_last_record_inside_quotes():
    _, records = read(b'a,b\n1,x\n2,"cut off here')
    assert records[0][2] == ["1", "x"]
    assert records[1][3] == Reason.MALFORMED_ROW
    assert records[1][4] == b'2,"cut off here'


def test_blank_lines_are_skipped_without_counting():
    _, records = read(b"a,b\n\n1,2\n\n3,4\n")
    assert [(r[0], r[1]) for r in records] == [(3, 1), (5, 2)]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty file"),
        (b"\n\n", "empty file"),
        (b"\xff\xfe\x00garbage\n1,2\n", "not UTF-8"),
        (b'"unterminated header\n', "unreadable header"),
    ],
)
def test_unusable_header(data, message):
    with pytest.raises(HeaderError, match=message):
        CsvFile(io.BytesIO(data), "f.csv", 1000)
