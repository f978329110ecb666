"""The parsed-file cache: a second load of an unchanged file skips Lark, and nothing stale or broken leaks out."""
from __future__ import annotations

import subprocess
import sys

import pytest

import cnndsl
from cnndsl.errors import CnnDslError
from cnndsl.parse_cache import cache_dir

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
