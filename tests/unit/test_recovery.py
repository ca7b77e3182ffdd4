"""lottery_gevent.recovery: cut a torn last record, refuse (and never touch) damage before it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lottery_gevent import contract
from lottery_gevent.recovery import Recovered, recover_bets, recover_done
from lottery_gevent.storage import BetStore, StorageFailure

ROW_1 = b"1,Ana,Lorca,30904465,1999-03-17,7574\r\n"
ROW_2 = b'2,"Juan, Pablo",P\xc3\xa9rez,21689196,2000-05-10,1\r\n'
ROW_3 = b"1,Zo\xc3\xab,\"O'Brien\nD'Angelo\",37130775,1995-05-09,4179\r\n"
GOOD = ROW_1 + ROW_2 + ROW_3


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "bets.csv"
    path.write_bytes(data)
    return path


def test_a_missing_file_is_empty_and_is_not_created(tmp_path: Path) -> None:
    assert recover_bets(str(tmp_path / "bets.csv")) == Recovered()
    assert not (tmp_path / "bets.csv").exists()


def test_an_empty_file(tmp_path: Path) -> None:
    assert recover_bets(str(write(tmp_path, b""))) == Recovered()


def test_a_complete_file_is_counted_and_untouched(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    before = os.stat(path)
    recovered = recover_bets(str(path))
    assert recovered == Recovered({1: 2, 2: 1}, len(GOOD), 0)
    assert recovered.rows == 3
    assert path.read_bytes() == GOOD
    assert os.stat(path).st_mtime_ns == before.st_mtime_ns


def test_lf_rows_are_complete_too(tmp_path: Path) -> None:
    data = GOOD.replace(b"\r\n", b"\n")
    assert recover_bets(str(write(tmp_path, data))) == Recovered({1: 2, 2: 1}, len(data), 0)


@pytest.mark.parametrize(
    "tail",
    [
        b"2,Ana,Lorca,1,2000-01-01,75",  # no final newline
        b"2,Ana,Lorca,1,2000-01-01,7574\r",  # only the \n missing
        b"2",
        b'2,"Ana\n',  # an unclosed quoted field, cut just after its embedded newline
        b'2,"Ana\nMar',  # ... and a little later
        b'2,"Ana\r\n1,x,y,1,2000-01-01,1\r\n',  # a quoted name can hold anything, even a row
        b"2,Jos\xc3",  # a torn UTF-8 sequence
        b'2,"Jos\xc3\xa9\nMar\xc3',  # a torn UTF-8 sequence inside a multi-line field
        b"\x00\x00\x00\x00",  # zeros from a size-extended file after a crash
    ],
)
def test_a_torn_last_record_is_cut(tmp_path: Path, tail: bytes) -> None:
    path = write(tmp_path, GOOD + tail)
    assert recover_bets(str(path)) == Recovered({1: 2, 2: 1}, len(GOOD), len(tail))
    assert path.read_bytes() == GOOD
    assert recover_bets(str(path)) == Recovered({1: 2, 2: 1}, len(GOOD), 0)  # idempotent


def test_a_complete_but_invalid_last_record_is_cut(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + b"1,a,b,1,2000-01-01\r\n")
    assert recover_bets(str(path)).size == len(GOOD)
    assert path.read_bytes() == GOOD


@pytest.mark.parametrize(
    "damage",
    [
        b"1,a,b,1,2000-01-01\r\n",  # five fields
        b"1,a,b,1,2000-01-01,1,1\r\n",  # seven
        b"1,a,b,1,2000-02-30,1\r\n",  # not a date
        b"x,a,b,1,2000-01-01,1\r\n",  # not an agency
        b"0,a,b,1,2000-01-01,1\r\n",  # agency 0
        b"1,a,b,1,2000-01-01,seven\r\n",  # not a number
        b"\r\n",  # a blank line
        b"1,Jos\xff,b,1,2000-01-01,1\r\n",  # not UTF-8
        b'1,"a"x,b,1,2000-01-01,1\r\n',  # text after a closing quote
    ],
)
@pytest.mark.parametrize(
    "after",
    [
        ROW_1,  # a complete record follows
        b"1,Ana,Lo",  # a torn record follows
        b'1,"Ana\n',  # a torn multi-line record follows
        b'1,"a"y,b,1,2000-01-01,1\r\n',  # another damaged record follows
    ],
    ids=["complete", "torn", "torn-quoted", "damaged"],
)
def test_damage_before_the_last_record_is_refused_and_the_file_untouched(
    tmp_path: Path, damage: bytes, after: bytes
) -> None:
    data = GOOD + damage + after
    path = write(tmp_path, data)
    with pytest.raises(ValueError, match="bets.csv"):
        recover_bets(str(path))
    assert path.read_bytes() == data


def test_every_cut_of_a_file_written_by_the_contract_recovers_its_complete_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whatever byte a crash stops store_bets at, recovery keeps exactly the rows
    # written in full: never fewer (a complete row lost), never a torn one.
    monkeypatch.chdir(tmp_path)
    names = ['José "Pepe", Jr.', "Ana\nMaría", "Zoë|Ñandú; x", "O'Brien\r\nD'Angelo", "plain", '"', "\n"]
    ends = []
    for index, name in enumerate(names):
        contract.store_bets([contract.Bet(1 + index % 2, name, "Núñez", str(index), "2000-01-01", str(index))])
        ends.append(os.path.getsize(contract.STORAGE_FILEPATH))
    full = Path(contract.STORAGE_FILEPATH).read_bytes()
    for cut in range(len(full) + 1):
        path = write(tmp_path, full[:cut])
        kept = [end for end in ends if end <= cut]
        recovered = recover_bets(str(path))
        assert recovered.rows == len(kept), f"cut at byte {cut}"
        assert recovered.size == (kept[-1] if kept else 0)
        assert path.read_bytes() == full[: recovered.size]
    # And the repaired file reads back through the contract.
    assert [bet.first_name for bet in contract.load_bets()] == [n.replace("\r\n", "\n") for n in names]


# --- the done log -----------------------------------------------------------------


def test_done_log_missing(tmp_path: Path) -> None:
    assert recover_done(str(tmp_path / "done.txt")) == (set(), 0)
    assert not (tmp_path / "done.txt").exists()


def test_done_log_complete(tmp_path: Path) -> None:
    path = tmp_path / "done.txt"
    path.write_bytes(b"1\n3\n3\n")
    assert recover_done(str(path)) == ({1, 3}, 0)
    assert path.read_bytes() == b"1\n3\n3\n"


@pytest.mark.parametrize("tail", [b"2", b"12", b"x"])
def test_done_log_torn_last_line_is_cut(tmp_path: Path, tail: bytes) -> None:
    path = tmp_path / "done.txt"
    path.write_bytes(b"1\n" + tail)
    assert recover_done(str(path)) == ({1}, len(tail))
    assert path.read_bytes() == b"1\n"


@pytest.mark.parametrize("bad", [b"x\n", b"\n", b"-1\n", b"1 \n"])
def test_done_log_damage_is_refused_and_the_file_untouched(tmp_path: Path, bad: bytes) -> None:
    path = tmp_path / "done.txt"
    data = b"1\n" + bad + b"2\n4"
    path.write_bytes(data)
    with pytest.raises(ValueError, match="line 2"):
        recover_done(str(path))
    assert path.read_bytes() == data


@pytest.mark.parametrize(("name", "data"), [("bets.csv", ROW_1 + b"1,x\r\n" + ROW_2), ("agencies-done.txt", b"x\n1\n")])
def test_a_store_on_damaged_files_does_not_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, data: bytes
) -> None:
    (tmp_path / name).write_bytes(data)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StorageFailure, match=name):
        BetStore(durable=False).open()
    assert (tmp_path / name).read_bytes() == data
