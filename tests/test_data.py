"""autograder.workbook.data: the names file, its checks, the examples and the split."""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from autograder.workbook import data
from autograder.workbook.data import CHARS, NAMES_ENV, NamesFileError, build_dataset, load_names, split_words

FAST = settings(max_examples=40, deadline=None, derandomize=True, database=None)
names_strategy = st.lists(st.text(alphabet=CHARS[1:], min_size=1, max_size=12), min_size=1, max_size=25)


@pytest.fixture(autouse=True)
def no_names_env(monkeypatch):
    """Every test starts without $NINJA_NAMES_FILE, whatever the caller's shell has."""
    monkeypatch.delenv(NAMES_ENV, raising=False)


@pytest.fixture(scope="module")
def bundled():
    return load_names(data.BUNDLED_NAMES)  # by path: module fixtures run before no_names_env


def write(tmp_path, content: bytes | str, name: str = "names.txt"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


# ------------------------------------------------------------- the bundled list

def test_bundled_list_has_its_recorded_checksum_and_size(bundled):
    import hashlib

    assert hashlib.sha256(data.BUNDLED_NAMES.read_bytes()).hexdigest() == data.NAMES_SHA256
    assert len(bundled) == 32_469
    assert bundled[0] == "emma"
    assert all(name and set(name) <= set(CHARS[1:]) for name in bundled)


def test_a_modified_bundled_copy_is_refused_with_how_to_restore_it(tmp_path, monkeypatch):
    raw = bytearray(data.BUNDLED_NAMES.read_bytes())
    raw[1] = ord("n") if raw[1] != ord("n") else ord("m")  # "emma" -> "enma": still a valid names file
    copy = write(tmp_path, bytes(raw))
    monkeypatch.setattr(data, "BUNDLED_NAMES", copy)
    for call in (lambda: load_names(), lambda: load_names(copy)):
        with pytest.raises(NamesFileError) as err:
            call()
        message = str(err.value)
        assert "sha256" in message and data.NAMES_SHA256 in message
        assert "make names" in message and "git checkout data/names.txt" in message


def test_a_truncated_bundled_copy_is_refused(tmp_path, monkeypatch):
    copy = write(tmp_path, data.BUNDLED_NAMES.read_bytes()[:-6])
    monkeypatch.setattr(data, "BUNDLED_NAMES", copy)
    with pytest.raises(NamesFileError, match="modified or truncated"):
        load_names()


def test_an_unmodified_copy_at_the_bundled_path_loads(tmp_path, monkeypatch, bundled):
    copy = write(tmp_path, data.BUNDLED_NAMES.read_bytes())
    monkeypatch.setattr(data, "BUNDLED_NAMES", copy)
    assert load_names() == bundled


# ------------------------------------------------------------- other lists

def test_another_file_by_argument_needs_no_checksum(tmp_path):
    path = write(tmp_path, "anna\nbob\nzoe\n")
    assert load_names(path) == ["anna", "bob", "zoe"]
    assert load_names(str(path)) == ["anna", "bob", "zoe"]


def test_another_file_by_environment_variable(tmp_path, monkeypatch, bundled):
    path = write(tmp_path, "anna\nbob\n")
    monkeypatch.setenv(NAMES_ENV, str(path))
    assert load_names() == ["anna", "bob"]
    # an explicit path wins over the environment
    other = write(tmp_path, "carl\n", "other.txt")
    assert load_names(other) == ["carl"]
    # an empty variable means the bundled list
    monkeypatch.setenv(NAMES_ENV, "")
    assert load_names() == bundled


def test_a_file_without_final_newline_or_with_crlf_reads_the_same(tmp_path):
    assert load_names(write(tmp_path, "anna\nbob", "a.txt")) == ["anna", "bob"]
    assert load_names(write(tmp_path, "anna\r\nbob\r\n", "b.txt")) == ["anna", "bob"]


@pytest.mark.parametrize("content, line, hint", [
    ("emma\nAnna\nbob\n", 2, "outside a-z"),
    ("emma\nbob\nzoë\n", 3, "non-ASCII"),
    ("emma\nmary-kate\n", 2, "outside a-z"),
    ("emma\nanna \n", 2, "outside a-z"),
    ("emma\n\nbob\n", 2, "empty line"),
    ("emma\nbob\n\n", 3, "empty line"),
    ("\n", 1, "empty line"),
])
def test_a_bad_line_is_named(tmp_path, content, line, hint):
    path = write(tmp_path, content)
    with pytest.raises(NamesFileError) as err:
        load_names(path)
    message = str(err.value)
    assert f"{path}:{line}:" in message
    assert hint in message


def test_the_offending_characters_are_shown(tmp_path):
    with pytest.raises(NamesFileError, match=r"'Anna' has characters outside a-z: 'A'"):
        load_names(write(tmp_path, "emma\nAnna\n"))


def test_an_empty_file_is_refused(tmp_path):
    path = write(tmp_path, b"")
    with pytest.raises(NamesFileError, match="no names"):
        load_names(path)


def test_a_missing_file_is_refused(tmp_path, monkeypatch):
    missing = tmp_path / "nope.txt"
    with pytest.raises(NamesFileError, match="not found") as err:
        load_names(missing)
    assert str(missing) in str(err.value)
    monkeypatch.setenv(NAMES_ENV, str(missing))
    with pytest.raises(NamesFileError, match="not found"):
        load_names()


def test_names_file_error_is_a_value_error():
    assert issubclass(NamesFileError, ValueError)


# ------------------------------------------------------------- examples

def test_build_dataset_on_emma():
    X, Y = build_dataset(["emma"])
    e, m, a = (data.STOI[c] for c in "ema")
    assert X.tolist() == [[0, 0, 0], [0, 0, e], [0, e, m], [e, m, m], [m, m, a]]
    assert Y.tolist() == [e, m, m, a, 0]
    assert X.dtype == Y.dtype == torch.long


def test_build_dataset_other_block_size():
    X, Y = build_dataset(["ab", "c"], block_size=1)
    assert X.tolist() == [[0], [1], [2], [0], [3]]
    assert Y.tolist() == [1, 2, 0, 3, 0]


def test_vocabulary():
    assert data.VOCAB_SIZE == 27 and data.BLOCK_SIZE == 3
    assert data.STOI["."] == 0 and data.STOI["a"] == 1 and data.STOI["z"] == 26
    assert all(data.ITOS[i] == ch for ch, i in data.STOI.items())


@FAST
@given(words=names_strategy, block_size=st.integers(1, 5))
def test_build_dataset_properties(words, block_size):
    X, Y = build_dataset(words, block_size)
    total = sum(len(w) + 1 for w in words)
    assert X.shape == (total, block_size) and Y.shape == (total,)
    assert int(Y.min()) >= 0 and int(Y.max()) <= 26
    assert int(X.min()) >= 0 and int(X.max()) <= 26
    # The targets spell the names, each followed by '.'.
    assert "".join(data.ITOS[i] for i in Y.tolist()) == "".join(w + "." for w in words)
    row = 0
    for word in words:
        assert X[row].tolist() == [0] * block_size  # a name starts from '...'
        for k in range(len(word)):  # the context shifts left and takes in the last target
            assert X[row + k + 1].tolist() == X[row + k].tolist()[1:] + [Y[row + k].item()]
        row += len(word) + 1
        assert Y[row - 1].item() == 0  # and ends with '.'


def test_build_dataset_of_no_words_keeps_the_context_width():
    X, Y = build_dataset([])
    assert X.shape == (0, data.BLOCK_SIZE) and Y.shape == (0,)


# ------------------------------------------------------------- the split

def lecture_split(words):
    """The lecture's code, with the global generator's state put back afterwards."""
    state = random.getstate()
    try:
        words = list(words)
        random.seed(42)
        random.shuffle(words)
        n1, n2 = int(0.8 * len(words)), int(0.9 * len(words))
        return words[:n1], words[n1:n2], words[n2:]
    finally:
        random.setstate(state)


def test_split_reproduces_the_lecture_on_the_bundled_list(bundled):
    train, dev, test = split_words(bundled)
    assert (train, dev, test) == lecture_split(bundled)
    n = len(bundled)
    assert (len(train), len(dev), len(test)) == (int(0.8 * n), int(0.9 * n) - int(0.8 * n), n - int(0.9 * n))
    assert sorted(train + dev + test) == sorted(bundled)


@FAST
@given(words=st.lists(st.text(alphabet="abc", min_size=1, max_size=4), max_size=60))
def test_split_matches_the_lecture_and_leaves_global_random_alone(words):
    state = random.getstate()
    before = list(words)
    assert split_words(words) == lecture_split(words)
    assert random.getstate() == state
    assert words == before  # the caller's list is not shuffled in place


def test_split_seed_changes_the_order(bundled):
    assert split_words(bundled, seed=1) != split_words(bundled, seed=42)


def test_make_splits_builds_the_examples_of_each_part(bundled):
    splits = data.make_splits()
    for (X, Y), words in zip([(splits.Xtr, splits.Ytr), (splits.Xdev, splits.Ydev), (splits.Xte, splits.Yte)],
                             split_words(bundled)):
        X2, Y2 = build_dataset(words)
        assert torch.equal(X, X2) and torch.equal(Y, Y2)
    assert len(splits.Xtr) + len(splits.Xdev) + len(splits.Xte) == sum(len(w) + 1 for w in bundled)


def test_make_splits_of_given_words_does_not_read_the_file(monkeypatch, tmp_path):
    monkeypatch.setattr(data, "BUNDLED_NAMES", tmp_path / "absent.txt")
    words = [f"{a}{b}" for a in "abcdefghij" for b in "xyz"]
    splits = data.make_splits(words)
    assert len(splits.Xtr) + len(splits.Xdev) + len(splits.Xte) == 3 * len(words)
