"""The parsed-file cache: a second load of an unchanged file skips Lark, and nothing stale or broken leaks out."""

from __future__ import annotations

import json
import os
import pickle
import stat
import subprocess
import sys
import time

import pytest

import cnndsl
from cnndsl.core.errors import CnnDslError
from cnndsl.front import cache as parse_cache
from cnndsl.front.cache import cache_dir

NET = """network tiny {
  input 3x32x32
  conv3x3(16), relu
  stage(conv3x3*2, pool) x2
  gap, fc(10)
}
"""

# In a fresh interpreter: load the file, then say whether Lark was imported and what was counted.
PROBE = """
import sys, cnndsl
net = cnndsl.load(sys.argv[1])
print("lark" in sys.modules, net.params)
"""


def probe(path) -> tuple[bool, int]:
    result = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, check=True)
    imported, params = result.stdout.split()
    return imported == "True", int(params)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("CNNDSL_CACHE_DIR", str(folder))
    return folder


def entries(folder) -> list:
    return sorted(folder.glob("*.ast")) if folder.exists() else []


def test_second_load_of_an_unchanged_file_does_not_import_lark(tmp_path, cache):
    path = tmp_path / "tiny.cnn"
    path.write_text(NET)
    assert probe(path) == (True, 16 * 27 + 16 + 2 * (16 * 9 * 16 + 16) + 2 * (16 * 9 * 16 + 16) + 16 * 10 + 10)
    assert len(entries(cache)) == 1
    assert probe(path) == (False, cnndsl.load(path).params)


def test_an_edited_file_is_parsed_again(tmp_path, cache):
    path = tmp_path / "tiny.cnn"
    path.write_text(NET)
    before = cnndsl.load(path).params
    path.write_text(NET.replace("fc(10)", "fc(100)"))
    assert cnndsl.load(path).params == before + 90 * 16 + 90
    assert len(entries(cache)) == 1  # one entry per file, replaced


def test_the_same_text_in_two_files_keeps_each_files_positions(tmp_path, cache):
    bad = "network bad {\n  input 3x8x8\n  conv3x3(4), fc(10), conv3x3(4)\n}\n"
    for name in ("a.cnn", "b.cnn"):
        (tmp_path / name).write_text(bad)
    for name in ("a.cnn", "b.cnn", "a.cnn"):
        with pytest.raises(CnnDslError) as error:
            cnndsl.load(tmp_path / name)
        assert error.value.pos.file == str(tmp_path / name)
        assert (error.value.pos.line, error.value.pos.column) == (3, 23)


def test_a_syntax_error_is_reported_every_time_and_never_cached(tmp_path, cache):
    path = tmp_path / "broken.cnn"
    path.write_text("network n {\n  input 3x8x8\n  conv3x3(4\n}\n")
    for _ in range(2):
        with pytest.raises(CnnDslError) as error:
            cnndsl.load(path)
        assert (error.value.pos.line, error.value.pos.column) == (4, 1)
    assert entries(cache) == []


def test_a_corrupt_entry_is_a_miss_and_is_rewritten(tmp_path, cache):
    path = tmp_path / "tiny.cnn"
    path.write_text(NET)
    params = cnndsl.load(path).params
    [entry] = entries(cache)
    good = entry.read_bytes()
    for damaged in (b"", good[:40], good[:32] + b"not a pickle", b"\0" * len(good)):
        entry.write_bytes(damaged)
        assert cnndsl.load(path).params == params
        assert entry.read_bytes() == good


def test_a_cache_folder_that_cannot_be_made_only_costs_a_parse(tmp_path, cache):
    cache.write_text("not a folder")  # neither root nor anyone else can make a folder here
    path = tmp_path / "tiny.cnn"
    path.write_text(NET)
    assert cnndsl.load(path).params == cnndsl.parse(NET).params


def test_no_cache_when_switched_off(tmp_path, cache, monkeypatch):
    monkeypatch.setenv("CNNDSL_NO_CACHE", "1")
    path = tmp_path / "tiny.cnn"
    path.write_text(NET)
    cnndsl.load(path)
    assert cache_dir() is None and entries(cache) == []


def test_text_given_directly_is_not_cached(cache):
    cnndsl.parse(NET)
    assert entries(cache) == []


def test_the_default_folder_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("CNNDSL_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "cnndsl"


def test_no_home_folder_means_no_cache(monkeypatch, tmp_path):
    def no_home():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.delenv("CNNDSL_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr("pathlib.Path.home", no_home)
    path = tmp_path / "tiny.cnn"
    path.write_text(NET)
    assert cache_dir() is None
    assert cnndsl.load(path).params == cnndsl.parse(NET).params


# ---- an entry is data that only the user wrote ------------------------------------------------
TINY_PARAMS = 16 * 27 + 16 + 4 * (16 * 9 * 16 + 16) + 16 * 10 + 10  # conv3x3(16) from 3, four conv3x3(16), fc(10)


class _Opens:
    """Unpickling this calls open(path, "w"): a file appearing at `path` means the entry ran code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def test_an_entry_that_would_run_code_when_unpickled_is_only_a_miss(tmp_path, cache):
    path = tmp_path / "tiny.cnn"
    path.write_text(NET)
    assert cnndsl.load(path).params == TINY_PARAMS
    [entry] = entries(cache)
    good = entry.read_bytes()
    marker = tmp_path / "ran"
    for header in (good[:32], good[:65]):  # the binary digest that keyed the old pickles, the hex key line of today's
        entry.write_bytes(header + pickle.dumps(_Opens(marker)))
        assert cnndsl.load(path).params == TINY_PARAMS
        assert not marker.exists()
        assert entry.read_bytes() == good


def test_entries_are_private_json_data(tmp_path, cache):
    path = tmp_path / "tiny.cnn"
    path.write_text(NET)
    cnndsl.load(path)
    [entry] = entries(cache)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    data = entry.read_bytes().split(b"\n", 1)[1]
    tree = json.loads(data)
    assert tree[0] == "Program" and tree[1] == str(path) and tree[2] == NET


def _plant(path, cache, other_text: str) -> int:
    """Replace the entry of `path` by a well-formed one, under the right key, of another network; its params."""
    cnndsl.load(path)
    [entry] = entries(cache)
    key = entry.read_bytes().split(b"\n", 1)[0] + b"\n"
    other = parse_cache.parse_text(other_text, str(path))
    planted = type(other)(other.file, path.read_text(), other.imports, other.definitions)
    entry.write_bytes(key + json.dumps(parse_cache.encode(planted)).encode())
    entry.chmod(0o600)
    return cnndsl.parse(other_text).params


def _foreign_uid(monkeypatch, cache, entry):
    monkeypatch.setattr(os, "geteuid", lambda: cache.stat().st_uid + 1)


@pytest.mark.parametrize(
    "distrust,why",
    [
        (
            lambda monkeypatch, cache, entry: cache.chmod(0o777),
            "the folder {cache} can be written by other users (mode 777)",
        ),
        (
            lambda monkeypatch, cache, entry: cache.chmod(0o720),
            "the folder {cache} can be written by other users (mode 720)",
        ),
        (
            lambda monkeypatch, cache, entry: entry.chmod(0o622),
            "the entry {entry} can be written by other users (mode 622)",
        ),
        (_foreign_uid, "the folder {cache} belongs to another user (uid {uid})"),
    ],
    ids=["folder-777", "folder-group-writable", "entry-other-writable", "another-users-folder"],
)
def test_a_cache_others_could_write_is_not_read(tmp_path, cache, monkeypatch, capsys, distrust, why):
    path = tmp_path / "tiny.cnn"
    path.write_text(NET)
    other_params = _plant(path, cache, NET.replace("fc(10)", "fc(1000)"))
    assert cnndsl.load(path).params == other_params  # the planted entry is well-formed: trusted, it is used
    [entry] = entries(cache)
    planted = entry.read_bytes()
    monkeypatch.setattr(parse_cache, "_warned", set())
    distrust(monkeypatch, cache, entry)
    capsys.readouterr()
    assert cnndsl.load(path).params == TINY_PARAMS
    assert cnndsl.load(path).params == TINY_PARAMS
    warning = capsys.readouterr().err
    expected = why.format(cache=cache, entry=entry, uid=cache.stat().st_uid)
    assert warning == (
        f"cnndsl: warning: not using the parse cache: {expected}; make it yours with mode 700, or set "
        "CNNDSL_CACHE_DIR to a private folder (CNNDSL_NO_CACHE=1 turns the cache off)\n"
    )
    assert entry.read_bytes() == planted  # nor written


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only root can give a file away")
def test_an_entry_owned_by_another_user_is_not_read(tmp_path, cache, monkeypatch, capsys):
    path = tmp_path / "tiny.cnn"
    path.write_text(NET)
    _plant(path, cache, NET.replace("fc(10)", "fc(1000)"))
    [entry] = entries(cache)
    os.chown(entry, 65534, 65534)
    monkeypatch.setattr(parse_cache, "_warned", set())
    assert cnndsl.load(path).params == TINY_PARAMS
    assert f"the entry {entry} belongs to another user (uid 65534)" in capsys.readouterr().err


def test_an_entry_over_the_size_limit_is_neither_written_nor_read(tmp_path, cache, monkeypatch):
    path = tmp_path / "tiny.cnn"
    path.write_text(NET)
    _plant(path, cache, NET.replace("fc(10)", "fc(1000)"))
    [entry] = entries(cache)
    monkeypatch.setattr(parse_cache, "MAX_ENTRY_BYTES", entry.stat().st_size - 1)
    assert cnndsl.load(path).params == TINY_PARAMS  # the planted entry is too large to be read
    entry.unlink()
    monkeypatch.setattr(parse_cache, "MAX_ENTRY_BYTES", len(NET))
    assert cnndsl.load(path).params == TINY_PARAMS and entries(cache) == []  # nor is one written


def _load_in_order(tmp_path, cache, names: list[str]) -> dict[str, str]:
    """Load each file in turn, dating its new entry a minute after the last (file systems date to a few ms):
    name -> its entry."""
    written = {}
    for minute, name in enumerate(names):
        path = tmp_path / f"{name}.cnn"
        path.write_text(NET.replace("tiny", name))
        known = set(entries(cache))
        assert cnndsl.load(path).params == TINY_PARAMS
        [entry] = set(entries(cache)) - known
        os.utime(entry, (1_700_000_000 + 60 * minute,) * 2)
        written[name] = entry.name
    return written


def test_the_cache_keeps_the_newest_entries_up_to_its_count_and_a_dropped_file_is_parsed_again(
    tmp_path, cache, monkeypatch
):
    monkeypatch.setattr(parse_cache, "MOST_ENTRIES", 3)
    written = _load_in_order(tmp_path, cache, ["a", "b", "c", "d", "e"])
    assert {entry.name for entry in entries(cache)} == {written[name] for name in "cde"}
    assert cnndsl.load(tmp_path / "a.cnn").params == TINY_PARAMS  # parsed again, and kept as the newest
    assert {entry.name for entry in entries(cache)} == {written[name] for name in "ade"}


def test_the_cache_keeps_the_newest_entries_within_its_bytes(tmp_path, cache, monkeypatch):
    written = _load_in_order(tmp_path, cache, ["a"])
    size = (cache / written["a"]).stat().st_size  # every file's entry is this size: one letter differs
    monkeypatch.setattr(parse_cache, "MOST_BYTES", 2 * size + size // 2)
    written |= _load_in_order(tmp_path, cache, ["b", "c", "d"])
    assert {entry.name for entry in entries(cache)} == {written["c"], written["d"]}


def test_pruning_leaves_what_is_not_an_entry_and_removes_a_killed_writers_old_temporary(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(parse_cache, "MOST_ENTRIES", 1)
    _load_in_order(tmp_path, cache, ["a"])
    (cache / "notes.txt").write_text("mine")
    (cache / "0123456789abcdef0123456789abcdef.ast").mkdir()  # an entry's name, but a folder
    (cache / "fedcba9876543210fedcba9876543210.ast").symlink_to(cache / "notes.txt")
    for name, age_s in ((".old.ast.1.part", parse_cache.STALE_PART_S + 60), (".new.ast.2.part", 60)):
        (cache / name).write_bytes(b"half")
        os.utime(cache / name, (time.time() - age_s,) * 2)
    written = _load_in_order(tmp_path, cache, ["b"])
    assert sorted(item.name for item in cache.iterdir()) == sorted(
        [
            ".new.ast.2.part",
            "0123456789abcdef0123456789abcdef.ast",
            "fedcba9876543210fedcba9876543210.ast",
            "notes.txt",
            written["b"],
        ]
    )
    assert (cache / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    "damage",
    [
        lambda tree: ["SourcePos", [1, 1]],  # a class, but not a syntax node
        lambda tree: ["Path", "/etc/passwd"],
        lambda tree: tree[:3] + [tree[3], tree[4], "extra"],  # a Program with a field too many
        lambda tree: [tree[0], tree[1], tree[2], tree[3], [["Let", [1, 1], "x", ["Number", [1, 9], "10"]]]],
        lambda tree: [tree[0], tree[1], tree[2], tree[3], [["Let", [1, 1], "x", ["Number", [1, 9], True]]]],
        lambda tree: [tree[0], tree[1], tree[2], tree[3], [["Let", [0, 1], "x", ["Number", [1, 9], 1]]]],
        lambda tree: [tree[0], tree[1], tree[2], tree[3], [["Let", [1, 1], "x", ["Layer", [1, 9], "relu", [], False]]]],
        lambda tree: [
            tree[0],
            tree[1],
            tree[2],
            tree[3],
            [["Let", [1, 1], "x", ["Binary", [1, 9], "**", ["Number", [1, 9], 1], ["Number", [1, 9], 1]]]],
        ],
        lambda tree: [tree[0], "other.cnn", tree[2], tree[3], tree[4]],  # another file's tree
    ],
    ids=[
        "not-a-node",
        "not-a-class-of-the-tree",
        "extra-field",
        "string-number",
        "bool-number",
        "line-0",
        "statement-as-expression",
        "unknown-operator",
        "other-file",
    ],
)
def test_only_well_formed_syntax_trees_decode(tmp_path, damage):
    tree = parse_cache.encode(parse_cache.parse_text(NET, "t.cnn"))
    assert parse_cache.decode(tree, NET, "t.cnn") == parse_cache.parse_text(NET, "t.cnn")
    with pytest.raises(ValueError):
        parse_cache.decode(damage(tree), NET, "t.cnn")


def test_every_syntax_class_decodes_and_a_long_number_list_is_one_node_read_back_without_lark(tmp_path, cache):
    for cls in parse_cache._NODES.values():
        parse_cache._fields(cls)  # a field of a type the cache cannot check would raise TypeError here
    path = tmp_path / "wide.cnn"
    path.write_text("let widths = [" + ", ".join(map(str, range(200_000))) + "]\nnetwork wide { input 3 }\n")
    first = cnndsl.load(path)
    [entry] = entries(cache)
    assert probe(path) == (False, first.params)
    assert b'["NumberList",[1,14],[0,1,2,3,' in entry.read_bytes()  # one node, not 200,000
