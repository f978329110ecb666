"""What a hostile file, cache, import or name cannot do: run code, read what it should not, or change a network.

Each test pins down one finding of issue 14 and fails on the code before its fix.
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys

NET = "network tiny {\n  input 3x8x8\n  conv3x3(4), relu, gap, fc(2)\n}\n"


class _Opens:
    """Unpickling this calls open(path, "w"): a file appearing at `path` means a pickle ran code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


# Parse NET in a fresh interpreter whose temp folder is argv[1]; with argv[2] == "lark-cache", every Lark is
# built with cache=True, so Lark writes its cache file where cnndsl's parser would find it if it used one.
PARSE = """
import sys, lark
if sys.argv[2] == "lark-cache":
    build = lark.Lark.__init__
    lark.Lark.__init__ = lambda self, grammar, **options: build(self, grammar, **{**options, "cache": True})
import cnndsl
print(cnndsl.parse(sys.argv[3]).params)
"""


def _parse_with_temp(folder, mode: str = "plain") -> int:
    env = {**os.environ, "TMPDIR": str(folder), "CNNDSL_NO_CACHE": "1"}
    result = subprocess.run([sys.executable, "-c", PARSE, str(folder), mode, NET], env=env, capture_output=True,
                            text=True, check=True)
    return int(result.stdout)


def test_parsing_writes_nothing_to_the_temp_folder_and_reads_no_grammar_pickle_from_it(tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    params = 4 * 27 + 4 + 4 * 2 + 2
    assert _parse_with_temp(temp) == params
    assert list(temp.iterdir()) == []
    assert _parse_with_temp(temp, "lark-cache") == params  # Lark names its cache file after the grammar and options
    [planted] = list(temp.iterdir())
    marker = tmp_path / "ran"
    planted.write_bytes(b"any digest\n" + pickle.dumps(_Opens(marker)))
    assert _parse_with_temp(temp) == params
    assert not marker.exists()
