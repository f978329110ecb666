"""`--to python`: the generated file is safe whatever the source's names, and reads like hand-written
PyTorch while holding the same function and state_dict as `to_torch()`."""
from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
import torch

import cnndsl
from cnndsl.backends.torch import write_python
from cnndsl.errors import NameProblem


def _import(path, name="generated"):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- hostile names --------------------------------------------------------------------
def test_a_file_name_that_closes_the_docstring_runs_nothing_when_the_file_is_imported(cli, tmp_path):
    name = 'x"""\nimport os; os.system("touch MARKER")\n"""y.cnn'
    (tmp_path / name).write_text("network n { input 3x8x8\n conv3x3(4), relu }\n")
    assert cli("compile", tmp_path / name, "--to", "python", "-o", tmp_path / "net.py").exit_code == 0
    code = "import net; print(net.__doc__.splitlines()[0])"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert not (tmp_path / "MARKER").exists()
    assert done.stdout == 'n, compiled from x"""\n'  # the name, escaped in the file, reads back as it is


def test_labels_and_names_that_are_python_keywords_or_builtins_give_working_code(tmp_path):
    source = """block int(c) { conv3x3(c), relu }
network None { input 3x8x8
    class: conv3x3(4), relu
    stage print { int(4) }
    def: conv1x1(4)
    add(@class), None: relu
}"""
    network = cnndsl.parse(source, file="n.cnn")
    module = network.to_torch(seed=0).eval()
    written = _import(write_python(network, tmp_path / "net.py")).NoneNetwork()
    written.load_state_dict(module.state_dict())
    images = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(written.eval()(images), module(images))


@pytest.mark.parametrize("declaration, call", [("block def(c)", "def(4)"), ("block None(c)", "None(4)"),
                                               ("block double(c)", "double(4)")])
def test_a_block_named_like_a_python_keyword_or_a_module_method_is_a_located_error(tmp_path, declaration, call):
    source = f"{declaration} {{ conv3x3(c) }}\nnetwork n {{ input 3x8x8\n  {call}\n}}"
    with pytest.raises(NameProblem) as caught:
        write_python(cnndsl.parse(source, file="n.cnn"), tmp_path / "net.py")
    assert (caught.value.pos.line, caught.value.pos.column) == (3, 3)
    assert not (tmp_path / "net.py").exists()
