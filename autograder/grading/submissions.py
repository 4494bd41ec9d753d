"""Reading what students handed in, as a hostile party may have left it.

A submission folder is student-controlled: it may hold links to anything the
grader can read, named pipes that block a reader forever, devices, huge or
countless files. The grader reads it only through ``read_submission``:

* nothing is followed: the folder and each file are opened with
  ``O_NOFOLLOW`` relative to the folder's own descriptor, so a link, or a
  folder swapped for a link meanwhile, is never entered;
* only regular files are read (``fstat`` after opening, ``O_NONBLOCK`` so a
  pipe cannot block the open), and only what grading needs: the notebooks
  (``*.ipynb``) and what nbgrader's exchange leaves (``timestamp.txt``,
  ``submission_secret.txt``);
* bounded: at most MAX_NOTEBOOK_BYTES per notebook, MAX_NOTEBOOKS notebooks,
  MAX_SUBMISSION_BYTES in all, MAX_LISTED entries listed; everything else
  is named in the notes, never read.

``Submission`` is what a grading task carries to a worker: plain bytes and
names, nothing that points back into the folder.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

MAX_NOTEBOOK_BYTES = 20 * 2**20
MAX_NOTEBOOKS = 12  # the workbook has seven; a few more allow for copies ("... Copy1.ipynb")
MAX_SUBMISSION_BYTES = 64 * 2**20
MAX_LISTED = 200
MAX_TIMESTAMP_BYTES = 200
TIMESTAMP_FILE = "timestamp.txt"  # nbgrader's name, in each submission folder
SECRET_FILE = "submission_secret.txt"  # nbgrader's exchange: release_feedback names a student's pages by it
EXCHANGE_FILES = {TIMESTAMP_FILE: MAX_TIMESTAMP_BYTES, SECRET_FILE: 1024}  # read, at most this many bytes


@dataclass(frozen=True)
class Submission:
    """One student's folder as data."""

    student: str
    files: dict[str, bytes] = field(default_factory=dict)  # notebooks (and timestamp.txt) that were read
    links: tuple[str, ...] = ()  # entries that were symbolic links: never followed
    unread: tuple[str, ...] = ()  # other entries: folders, pipes, devices, files not needed or over the limits
    notes: tuple[str, ...] = ()  # what the reader has to say (a limit reached, the folder itself a link)
    folder_is_link: bool = False

    def digest(self) -> str:
        """Identifies what was handed in (the names and the bytes read)."""
        digest = hashlib.sha256()
        for name, content in sorted(self.files.items()):
            digest.update(name.encode("utf-8", "surrogateescape") + b"\0" + hashlib.sha256(content).digest())
        for group in (self.links, self.unread, self.notes):
            digest.update(repr(group).encode("utf-8", "surrogateescape"))
        digest.update(b"link" if self.folder_is_link else b"")
        return digest.hexdigest()


def read_submission(folder: Path, student: str, expected: tuple[str, ...] = ()) -> Submission:
    """Read ``folder`` safely (see the module docstring); ``expected`` notebook names are read first."""
    try:
        directory = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as err:
        if os.path.islink(folder):  # it could lead anywhere the grader can read, the masters included
            return Submission(student, folder_is_link=True,
                              notes=("the submission folder is a link to another folder, which was not read",))
        return Submission(student, notes=(f"the submission folder could not be opened ({err.strerror})",))
    try:
        return _read(directory, student, expected)
    finally:
        os.close(directory)


def _read(directory: int, student: str, expected: tuple[str, ...]) -> Submission:
    entries, listed_all = [], True
    with os.scandir(directory) as scan:
        for entry in scan:
            if len(entries) >= MAX_LISTED:
                listed_all = False
                break
            entries.append((entry.name, entry.is_symlink(), entry.is_file(follow_symlinks=False),
                            entry.is_dir(follow_symlinks=False)))
    order = {name: index for index, name in enumerate(expected)}
    entries.sort(key=lambda e: (order.get(_stem(e[0]), len(order)), e[0]))
    files: dict[str, bytes] = {}
    links, unread, notes = [], [], []
    total = notebooks = 0
    for name, is_link, is_file, is_dir in entries:
        if is_link:
            links.append(name)
            continue
        wanted = name.endswith(".ipynb") or name in EXCHANGE_FILES
        if not (is_file and wanted):
            unread.append(name + "/" if is_dir else name)
            continue
        limit = EXCHANGE_FILES.get(name, MAX_NOTEBOOK_BYTES)
        if name.endswith(".ipynb") and notebooks >= MAX_NOTEBOOKS:
            unread.append(name)
            notes.append(f"{name} was not read: a submission may hold at most {MAX_NOTEBOOKS} notebooks")
            continue
        content, why = read_regular_file(directory, name, min(limit, MAX_SUBMISSION_BYTES - total))
        if content is None:
            unread.append(name)
            notes.append(f"{name} was not read: {why}")
            continue
        files[name] = content
        total += len(content)
        notebooks += name.endswith(".ipynb")
    if not listed_all:
        notes.append(f"the folder holds more than {MAX_LISTED} entries; only the first {MAX_LISTED} were looked at")
    return Submission(student, files, tuple(links), tuple(unread), tuple(notes))


def _stem(name: str) -> str:
    return name[: -len(".ipynb")] if name.endswith(".ipynb") else name


def read_regular_file(directory: int, name: str, limit: int) -> tuple[bytes | None, str]:
    """(the bytes of regular file ``name`` in ``directory``, "") or (None, why not), never following a link."""
    if limit <= 0:
        return None, f"the submission is over {MAX_SUBMISSION_BYTES // 2**20} MB in all"
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=directory)
    except OSError as err:
        return None, f"it could not be opened ({err.strerror})"
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None, "it is not a regular file"
        if info.st_size > limit:
            return None, f"it is larger than {_megabytes(limit)}"
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:  # it grew while being read
            return None, f"it is larger than {_megabytes(limit)}"
        return b"".join(chunks), ""
    finally:
        os.close(fd)


def _megabytes(count: int) -> str:
    return f"{count / 2**20:.0f} MB" if count >= 2**20 else f"{count} bytes"


# ------------------------------------------------------------------ student ids

_SAFE_ID = re.compile(r"^[^\x00-\x1f\x7f/\\]{1,100}$")


def safe_name(student: str) -> str:
    """A folder name for ``student`` that every file system takes: the id itself when it already is one.

    Ids that are too long, hold control characters, slashes or bytes that are
    not UTF-8, or begin with a dot or a dash get a readable part and a digest
    of the whole id; ``OUT/student_ids.csv`` keeps the mapping.
    """
    if _SAFE_ID.match(student) and not student.startswith((".", "-")) and _encodes(student):
        return student
    readable = re.sub(r"[^A-Za-z0-9_.@+-]+", "_", student.encode("utf-8", "surrogateescape").decode("ascii", "ignore"))
    readable = readable.strip("._-")[:40] or "student"
    return f"{readable}-{hashlib.sha256(student.encode('utf-8', 'surrogateescape')).hexdigest()[:10]}"


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
