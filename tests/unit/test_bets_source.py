"""client_gevent.bets_source: streaming the agency CSV, skip=N resume, errors naming file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from client_gevent.bets_source import BetsFileError, CsvBets, SingleBet
from shared.domain import BetFields

ROWS = [
    BetFields("Santiago Lionel", "Lorca", "30904465", "1999-03-17", "2201"),
    BetFields("Juan, Pablo", "Pérez", "21689196", "2000-05-10", "7574"),
    BetFields('Martín "Tincho"', "Sofía|Belén; Ñandú", "34407251", "2001-08-29", "1033"),
    BetFields("Zoë", "O'Brien\nD'Angelo", "37130775", "1995-05-09", "4179"),
]
# The same rows as CSV text, with the quoting csv.writer would use.
LINES = [
    "Santiago Lionel,Lorca,30904465,1999-03-17,2201",
    '"Juan, Pablo",Pérez,21689196,2000-05-10,7574',
    '"Martín ""Tincho""",Sofía|Belén; Ñandú,34407251,2001-08-29,1033',
    "Zoë,\"O'Brien\nD'Angelo\",37130775,1995-05-09,4179",
]


def write(tmp_path: Path, text: str | bytes, name: str = "agency-1.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def read_all(path: Path, skip: int = 0) -> list[BetFields]:
    return list(CsvBets(path).rows(skip=skip))


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("final_newline", [True, False])
def test_lf_and_crlf_files(tmp_path: Path, newline: str, final_newline: bool) -> None:
    text = newline.join(LINES) + (newline if final_newline else "")
    assert read_all(write(tmp_path, text)) == ROWS


def test_blank_lines_are_ignored(tmp_path: Path) -> None:
    text = "\r\n" + LINES[0] + "\r\n\r\n\n" + LINES[1] + "\r\n\r\n"
    assert read_all(write(tmp_path, text)) == ROWS[:2]


def test_an_empty_file_has_no_bets(tmp_path: Path) -> None:
    assert read_all(write(tmp_path, "")) == []


def test_rows_are_streamed_and_line_tracks_the_row_end(tmp_path: Path) -> None:
    path = write(tmp_path, "\n".join(LINES) + "\n")
    source = CsvBets(path)
    rows = source.rows()
    assert next(rows) == ROWS[0]
    assert source.line == 1
    next(rows), next(rows)
    assert source.line == 3
    assert next(rows) == ROWS[3]
    assert source.line == 5  # the quoted field spans lines 4 and 5


@pytest.mark.parametrize("skip", [0, 1, 3, 4])
def test_skip_resumes_after_the_stored_bets(tmp_path: Path, skip: int) -> None:
    assert read_all(write(tmp_path, "\n\n".join(LINES)), skip=skip) == ROWS[skip:]


def test_skip_counts_bets_not_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "\n\n" + LINES[0] + "\n\n\n" + "\n".join(LINES[1:]))
    assert read_all(path, skip=2) == ROWS[2:]


def test_skip_past_the_end_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "\n".join(LINES))
    with pytest.raises(BetsFileError, match="has 4 bets, but the server already stores 5") as caught:
        read_all(path, skip=5)
    assert caught.value.path == path
    assert caught.value.line is None


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "agency-9.csv"
    with pytest.raises(BetsFileError) as caught:
        read_all(path)
    assert caught.value.line is None
    assert str(path) in str(caught.value)
    assert isinstance(caught.value.__cause__, FileNotFoundError)


def test_a_directory_is_not_a_bets_file(tmp_path: Path) -> None:
    with pytest.raises(BetsFileError, match=str(tmp_path)):
        read_all(tmp_path)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("Ana,Lorca,123,2000-01-01", "4 fields"),
        ("Ana,Lorca,123,2000-01-01,1,extra", "6 fields"),
        ("Ana,Lorca,not-a-dni,2000-01-01,1", "document"),
        ("Ana,Lorca,123,2000-02-30,1", "birthdate"),
        ("Ana,Lorca,123,2000-01-01,siete", "number"),
        (" ,Lorca,123,2000-01-01,1", "first_name"),
        ('Ana,"Lo"rca,123,2000-01-01,1', "unreadable row"),
        ("A" * 8192 + ",Lorca,10000007,2000-01-01,1", "the bet of document 10000007 needs 8"),  # over one frame
    ],
)
def test_a_bad_row_names_file_and_line_and_stops_there(tmp_path: Path, bad: str, reason: str) -> None:
    text = "\r\n".join([LINES[0], "", LINES[1], bad, LINES[2]]) + "\r\n"
    path = write(tmp_path, text)
    got = []
    with pytest.raises(BetsFileError) as caught:
        for bet in CsvBets(path).rows():
            got.append(bet)
    assert got == ROWS[:2]  # everything before the bad row, nothing after it
    assert caught.value.line == 4
    assert f"{path}:4: " in str(caught.value)
    assert reason in str(caught.value)


def test_a_bad_row_after_a_multiline_field_names_its_own_line(tmp_path: Path) -> None:
    path = write(tmp_path, "\n".join([LINES[3], LINES[3], "bad,row"]))
    with pytest.raises(BetsFileError) as caught:
        read_all(path)
    assert caught.value.line == 5


def test_an_unclosed_quote_names_the_line_where_the_file_ends(tmp_path: Path) -> None:
    path = write(tmp_path, LINES[0] + '\nAna,"Lorca,123,2000-01-01,1\nBob,X,2,2000-01-01,1\n')
    with pytest.raises(BetsFileError, match="unreadable row") as caught:
        read_all(path)
    assert caught.value.line == 3


@pytest.mark.parametrize("bad_bytes", [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf"])
def test_non_utf8_names_the_line_it_is_on(tmp_path: Path, bad_bytes: bytes) -> None:
    # Far enough into the file that a chunked decoder would blame an earlier line.
    lines = [f"Ana,Lorca,{n},2000-01-01,1".encode() for n in range(1000)]
    lines[499] = b"An" + bad_bytes + b"a,Lorca,1,2000-01-01,1"
    path = write(tmp_path, b"\r\n".join(lines) + b"\r\n")
    got = 0
    with pytest.raises(BetsFileError) as caught:
        for _ in CsvBets(path).rows():
            got += 1
    assert caught.value.line == 500
    assert f"{path}:500: " in str(caught.value)
    assert "UTF-8" in str(caught.value)
    assert got == 499


def test_non_utf8_in_a_row_already_stored_is_not_read_again(tmp_path: Path) -> None:
    path = write(tmp_path, b"An\xffa,Lorca,1,2000-01-01,1\n" + LINES[0].encode() + b"\n")
    assert read_all(path, skip=1) == ROWS[:1]


def test_the_error_message_is_printable(tmp_path: Path) -> None:
    path = write(tmp_path, b"An\xffa,Lorca,1,2000-01-01,1\n")
    with pytest.raises(BetsFileError) as caught:
        read_all(path)
    str(caught.value).encode("utf-8")  # no lone surrogate leaks into the log line


# --- SingleBet --------------------------------------------------------------------


def test_single_bet_yields_once() -> None:
    source = SingleBet(ROWS[1])
    assert list(source.rows()) == [ROWS[1]]
    assert list(source.rows(skip=1)) == []


@pytest.mark.parametrize(
    "bet",
    [
        ROWS[0]._replace(document="3090-4465"),
        ROWS[0]._replace(first_name="Santi\udcc3"),
        ROWS[0]._replace(first_name="A" * 8192),
    ],
    ids=["bad-document", "undecodable-environment", "larger-than-a-frame"],
)
def test_single_bet_invalid_is_a_clear_error(bet: BetFields) -> None:
    with pytest.raises(BetsFileError, match="<environment>"):
        list(SingleBet(bet).rows())
