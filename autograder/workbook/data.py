"""The names data set: loading, the character vocabulary and the (X, Y) splits.

The bundled list is ``data/names.txt`` (made by ``data/make_names.py``; an
installed wheel carries a copy, see ``resources``). An
instructor can use another list, for example the lecture's original one, by
passing ``path=`` or by setting the environment variable ``NINJA_NAMES_FILE``.
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from ..resources import NAMES_ENV, RESTORE_HINT, data_file

BUNDLED_NAMES = data_file("names.txt")
NAMES_SHA256 = "91691165b471c338ee35387260590f0fdc23fcb50509b9ccfe1c879c7ac39a1e"

CHARS = ".abcdefghijklmnopqrstuvwxyz"  # '.' (index 0) marks the start and the end of a name
STOI = {ch: i for i, ch in enumerate(CHARS)}
ITOS = dict(enumerate(CHARS))
VOCAB_SIZE = len(CHARS)  # 27
BLOCK_SIZE = 3  # characters of context used to predict the next one


class NamesFileError(ValueError):
    """A names file that is missing, altered or not one lowercase name per line."""


def load_names(path: str | os.PathLike | None = None) -> list[str]:
    """Read a names file: one name of letters a-z per line.

    ``path`` wins over ``$NINJA_NAMES_FILE``, which wins over the bundled list. The
    bundled list must match its recorded sha256, so a damaged copy is noticed
    instead of silently changing every number in the workbook.
    """
    chosen = path if path is not None else os.environ.get(NAMES_ENV) or BUNDLED_NAMES
    file = Path(chosen)
    if not file.is_file():
        raise NamesFileError(f"names file not found: {file}")
    raw = file.read_bytes()
    if file.resolve() == BUNDLED_NAMES.resolve():
        _verify_bundled(raw)
    return _parse_names(raw, file)


def _verify_bundled(raw: bytes) -> None:
    digest = hashlib.sha256(raw).hexdigest()
    if digest != NAMES_SHA256:
        raise NamesFileError(
            f"{BUNDLED_NAMES} has sha256 {digest}, expected {NAMES_SHA256}: the bundled "
            f"list was modified or truncated. {RESTORE_HINT.format(file='data/names.txt', make='make names')}"
        )


def _parse_names(raw: bytes, file: Path) -> list[str]:
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise NamesFileError(f"{file}:{line}: non-ASCII byte; names use only the letters a-z") from None
    names = text.splitlines()
    for number, name in enumerate(names, start=1):
        if not name:
            raise NamesFileError(f"{file}:{number}: empty line; the file must hold one name per line")
        bad = sorted(set(name) - set(CHARS[1:]))
        if bad:
            raise NamesFileError(
                f"{file}:{number}: {name!r} has characters outside a-z: {''.join(bad)!r} "
                "(lowercase the list and drop other characters first)"
            )
    if not names:
        raise NamesFileError(f"{file}: no names in the file")
    return names


def build_dataset(words: list[str], block_size: int = BLOCK_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (context, next character) pair of ``words``.

    Returns X (N, block_size) int64 of context indices, padded with '.' (0) at
    the start of a name, and Y (N,) int64 of the next index; a name of length
    L gives L + 1 examples (its last target is the end marker '.').
    """
    if not words:
        return torch.zeros((0, block_size), dtype=torch.long), torch.zeros(0, dtype=torch.long)
    # Lay the names end to end, each as block_size dots, the name and a final
    # dot; every window of block_size + 1 characters that stays inside one
    # name's stretch is an example: the context, then the target.
    text = "".join("." * block_size + word + "." for word in words)
    codes = torch.frombuffer(bytearray(text.encode("ascii", errors="replace")), dtype=torch.uint8).long()
    index = torch.where(codes == ord("."), 0, codes - ord("a") + 1)
    if ((index < 0) | (index >= VOCAB_SIZE)).any():
        raise ValueError("names may contain only the letters a-z")
    examples = torch.tensor([len(word) + 1 for word in words])
    stretch_starts = torch.cumsum(examples + block_size, 0) - (examples + block_size)
    first_example = torch.cumsum(examples, 0) - examples
    offsets = torch.arange(int(examples.sum())) - torch.repeat_interleave(first_example, examples)
    windows = index.unfold(0, block_size + 1, 1)[torch.repeat_interleave(stretch_starts, examples) + offsets]
    return windows[:, :block_size].contiguous(), windows[:, block_size].contiguous()


@dataclass(frozen=True)
class Splits:
    """The lecture's 80/10/10 split of the examples (train, dev, test)."""

    Xtr: torch.Tensor
    Ytr: torch.Tensor
    Xdev: torch.Tensor
    Ydev: torch.Tensor
    Xte: torch.Tensor
    Yte: torch.Tensor


def split_words(words: list[str], seed: int = 42) -> tuple[list[str], list[str], list[str]]:
    """Shuffle a copy of ``words`` with ``random.Random(seed)`` and cut it 80/10/10.

    ``random.Random(42)`` draws the same numbers as the lecture's module-level
    ``random.seed(42)``, without touching the global generator.
    """
    shuffled = list(words)
    random.Random(seed).shuffle(shuffled)
    n1, n2 = int(0.8 * len(shuffled)), int(0.9 * len(shuffled))
    return shuffled[:n1], shuffled[n1:n2], shuffled[n2:]


def make_splits(words: list[str] | None = None, block_size: int = BLOCK_SIZE, seed: int = 42) -> Splits:
    """Load the names (unless given) and build the train/dev/test tensors."""
    if words is None:
        words = load_names()
    train, dev, test = split_words(words, seed)
    return Splits(*build_dataset(train, block_size), *build_dataset(dev, block_size), *build_dataset(test, block_size))
