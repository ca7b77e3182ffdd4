# The data directory: one contest, and one server at a time.
#   - `lock_data_dir`: an exclusive flock on LOCK_FILENAME (our pid inside), held
#     for the life of the process and dropped by the kernel however it ends; taken
#     before recovery reads or repairs anything. A second server gets ConfigError.
#   - The contest id: CONTEST_ID_SIZE random bytes, as hex in CONTEST_FILENAME,
#     made on the first open of an empty directory and written durably (temporary
#     name, fsync, rename, directory fsync): a crash leaves no torn id.
#   - `archive_contest` (--new-contest) moves the contest's files into
#     archive/<contest id>/; it never deletes and never overwrites.
# Everything here runs before the event loop serves anyone: plain blocking calls.
from __future__ import annotations

import fcntl
import os
import secrets
from pathlib import Path

from shared.errors import ConfigError
from shared.protocol import CONTEST_ID_SIZE

#: The contest id, as hex, beside bets.csv.
CONTEST_FILENAME = "contest-id"
#: Held (flock) by the server that owns the directory.
LOCK_FILENAME = "server.lock"
#: Finished contests, one folder per contest id.
ARCHIVE_DIRNAME = "archive"
#: The files of one contest, in the order --new-contest moves them (the id last:
#: a crash half way leaves the id with what is not moved yet, and a rerun finishes the move).
CONTEST_FILES = ("bets.csv", "agencies-done.txt", "sales-closed", CONTEST_FILENAME)


def fsync_dir(directory: str | Path) -> None:
    """fsync a directory, so that the names created or renamed in it are durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, text: str, durable: bool = True) -> None:
    """Write `text` to `path` whole or not at all: a temporary name, fsync, rename, directory fsync."""
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", encoding="ascii") as file:
        file.write(text)
        file.flush()
        if durable:
            os.fsync(file.fileno())
    os.replace(partial, path)
    if durable:
        fsync_dir(path.parent)


def lock_data_dir(directory: Path) -> int:
    """Lock `directory` for this process; returns the descriptor, to keep open while serving.

    Raises:
        ConfigError: another process holds the lock (naming its pid).
        OSError: the lock file cannot be opened.
    """
    fd = os.open(directory / LOCK_FILENAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise ConfigError(f"data directory {directory} is in use by process {holder}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return fd


def read_contest(directory: str | Path) -> bytes | None:
    """The contest id stored in `directory`, or None if no contest has started there.

    Raises:
        ValueError: the file does not hold a contest id.
    """
    path = Path(directory) / CONTEST_FILENAME
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a contest id: {exc}") from exc
    try:
        contest = bytes.fromhex(text)
    except ValueError:
        contest = b""
    if len(contest) != CONTEST_ID_SIZE:
        raise ValueError(f"{path}: {text[:80]!r} is not a contest id ({2 * CONTEST_ID_SIZE} hex digits)")
    return contest


def load_or_create_contest(directory: str | Path, *, durable: bool = True) -> bytes:
    """The directory's contest id; a new, random one (stored durably) if none is stored yet.

    Raises:
        ValueError: the stored id is damaged.
        OSError: it cannot be written.
    """
    contest = read_contest(directory)
    if contest is not None:
        return contest
    contest = secrets.token_bytes(CONTEST_ID_SIZE)
    write_durably(Path(directory) / CONTEST_FILENAME, contest.hex() + "\n", durable)
    return contest


def archive_contest(directory: Path) -> Path | None:
    """Move the contest's files into archive/<contest id>/; returns that folder (None: nothing to move).

    Never deletes and never overwrites: a file already in the archive folder
    stops the move with FileExistsError. A directory with bets but no contest id
    (made before contest ids existed) is archived under a new random id.

    Raises:
        ValueError: the contest id file is damaged.
        FileExistsError: the archive already holds a file of the same name.
        OSError: a file cannot be moved.
    """
    present = [name for name in CONTEST_FILES if (directory / name).exists()]
    if not present:
        return None
    contest = read_contest(directory) or secrets.token_bytes(CONTEST_ID_SIZE)
    target = directory / ARCHIVE_DIRNAME / contest.hex()
    target.mkdir(parents=True, exist_ok=True)
    for name in present:
        if (target / name).exists():
            raise FileExistsError(f"{target / name} already exists; nothing more was moved")
    for name in present:
        os.rename(directory / name, target / name)
    fsync_dir(target)
    fsync_dir(target.parent)
    fsync_dir(directory)
    return target
