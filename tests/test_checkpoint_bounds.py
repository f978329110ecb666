"""Checkpoints written by someone else (issue 24): each hostile file is built here with torch.save and zipfile,
and ends in a located refusal, within 5 s and 1 GiB, before torch inflates or cnndsl walks what it holds."""

from __future__ import annotations

import zipfile

import pytest
import torch
from bounded import cnndsl

import cnndsl as api
from cnndsl.core.errors import FileProblem

SOURCE = "network t {\n    input 3x8x8\n    conv3x3(4), bn, relu, gap, fc(2)\n}\n"


@pytest.fixture
def net(tmp_path):
    path = tmp_path / "t.cnn"
    path.write_text(SOURCE)
    return path


def _state() -> dict:
    torch.manual_seed(0)
    return api.parse(SOURCE).to_torch().state_dict()


def test_a_wrapper_that_contains_itself_holds_no_state_dict(net, tmp_path):
    wrapper = {"epoch": 3}
    wrapper["model"] = {"state_dict": wrapper}  # a cycle two wrappers long
    torch.save(wrapper, tmp_path / "cycle.pt")
    done = cnndsl("weights", net, tmp_path / "cycle.pt")
    assert (done.returncode, done.stderr) == (
        1,
        f"error: {tmp_path / 'cycle.pt'} holds no state_dict (a mapping of parameter names to tensors)\n"
        'hint: save `module.state_dict()`, or a checkpoint holding it under "state_dict" or "model"\n',
    )


def test_a_key_40000_levels_deep_is_refused_before_matching(net, tmp_path):
    key = "a." * 40000 + "weight"
    torch.save({**_state(), key: torch.zeros(1)}, tmp_path / "deep.pt")
    done = cnndsl("weights", net, tmp_path / "deep.pt")
    assert (done.returncode, done.stderr) == (
        1,
        f"error: {tmp_path / 'deep.pt'} holds a key longer than 500 characters or deeper than 32 levels: "
        f"`{key[:60]}`…\nhint: a state_dict's keys name modules, a few levels deep\n",
    )


def test_a_small_file_inflating_past_what_the_network_takes_is_refused_before_torch_reads_it(net, tmp_path):
    """The conv's weight has the right shape but views a 128 MiB storage of zeros, which DEFLATE packs into
    ~130 kB; the network's 139 values allow 4 copies of 8 bytes each plus 64 MiB (67,113,312 bytes)."""
    state = {**_state(), "conv.weight": torch.zeros(2**25).as_strided((4, 3, 3, 3), (27, 9, 3, 1))}
    torch.save(state, tmp_path / "plain.pt")
    with (
        zipfile.ZipFile(tmp_path / "plain.pt") as plain,
        zipfile.ZipFile(tmp_path / "bomb.pt", "w", zipfile.ZIP_DEFLATED, compresslevel=1) as bomb,
    ):
        for entry in plain.infolist():
            with plain.open(entry) as read, bomb.open(entry.filename, "w") as write:
                while chunk := read.read(2**24):
                    write.write(chunk)
    (tmp_path / "plain.pt").unlink()
    bomb = tmp_path / "bomb.pt"
    assert bomb.stat().st_size < 2**20
    declared = sum(entry.file_size for entry in zipfile.ZipFile(bomb).infolist())
    assert declared > 2**27
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch, "load", lambda *args, **kwargs: pytest.fail("torch.load was called"))
        with pytest.raises(FileProblem) as caught:
            api.parse(SOURCE).to_torch(weights=bomb)
    assert caught.value.message == (
        f"cannot read weights from {bomb}: it inflates to {declared:,} bytes, more than the 67,113,312 "
        "this network's tensors can take"
    )


@pytest.mark.parametrize(
    "tensor,what",
    [
        (lambda: torch.empty(4, 3, 3, 3, device="meta"), "on the meta device"),
        (lambda: torch.zeros(4, 3, 3, 3).to_sparse(), "layout sparse_coo"),
        (lambda: torch.quantize_per_tensor(torch.zeros(4, 3, 3, 3), 0.1, 0, torch.qint8), "quantized"),
    ],
    ids=["meta", "sparse", "quantized"],
)
@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor")
def test_a_tensor_without_plain_values_is_refused(net, tmp_path, tensor, what):
    torch.save({**_state(), "conv.weight": tensor()}, tmp_path / "w.pt")
    done = cnndsl("compile", net, "--to", "onnx", "--weights", tmp_path / "w.pt", "-o", tmp_path / "t.onnx")
    assert done.returncode == 1
    assert (
        done.stderr.splitlines()[-1] == "hint: save dense tensors: `.to_dense()`, `.dequantize()`, or real "
        "weights instead of the meta device"
    )
    assert done.stderr.splitlines()[-2] == (
        f"error: {tmp_path / 'w.pt'} holds `conv.weight` as a tensor without plain values ({what})"
    )
    assert not (tmp_path / "t.onnx").exists()


def test_a_module_of_meta_parameters_is_refused_not_returned_as_loaded():
    with torch.device("meta"):
        module = api.parse(SOURCE).to_torch()
    with pytest.raises(FileProblem) as caught:
        api.parse(SOURCE).to_torch(weights=module)
    assert (
        caught.value.message == "the module holds `conv.weight` as a tensor without plain values (on the meta device)"
    )


@pytest.mark.parametrize("values", [0, 2**20])
def test_a_step_count_of_another_shape_is_left_out_as_a_missing_one_is(tmp_path, values):
    """Found by bench/fuzz.py (seeds 9459, 10849): torch's reshape of the count to a scalar raised RuntimeError."""
    state = _state()
    torch.save({**state, "bn.num_batches_tracked": torch.zeros(values)}, tmp_path / "w.pt")
    module = api.parse(SOURCE).to_torch(weights=tmp_path / "w.pt")
    assert module.state_dict()["bn.num_batches_tracked"].item() == 0
    assert torch.equal(module.state_dict()["conv.weight"], state["conv.weight"])


def test_a_zip_whose_directory_python_cannot_read_is_refused_not_a_traceback(tmp_path):
    """Found by bench/fuzz.py (seed 31363): a central directory entry asking for zip version 14.3 made zipfile
    raise NotImplementedError before torch was asked."""
    torch.save(_state(), tmp_path / "w.pt")
    data = bytearray((tmp_path / "w.pt").read_bytes())
    entry = data.index(b"PK\x01\x02")
    data[entry + 6 : entry + 8] = (143).to_bytes(2, "little")  # "version needed to extract": 14.3
    (tmp_path / "w.pt").write_bytes(bytes(data))
    with pytest.raises(FileProblem) as caught:
        api.parse(SOURCE).to_torch(weights=tmp_path / "w.pt")
    assert caught.value.message == (
        f"cannot read weights from {tmp_path / 'w.pt'}: a damaged zip (NotImplementedError: zip file version 14.3)"
    )


def test_a_zip_claiming_to_span_several_disks_is_refused_not_a_traceback(tmp_path):
    """Found by bench/fuzz.py (seeds 6543 and 29623): a Zip64 end-of-directory locator naming a second disk
    made `zipfile.is_zipfile` itself raise BadZipFile, outside the guard around reading the directory."""
    torch.save(_state(), tmp_path / "w.pt")
    data = (tmp_path / "w.pt").read_bytes()
    end = data.rindex(b"PK\x05\x06")  # the end-of-central-directory record, 22 bytes with no comment
    locator = b"PK\x06\x07" + (0).to_bytes(4, "little") + (0).to_bytes(8, "little") + (2).to_bytes(4, "little")
    (tmp_path / "w.pt").write_bytes(data[:end] + locator + data[end:])
    with pytest.raises(FileProblem) as caught:
        api.parse(SOURCE).to_torch(weights=tmp_path / "w.pt")
    assert caught.value.message == (
        f"cannot read weights from {tmp_path / 'w.pt'}: a damaged zip "
        "(BadZipFile: zipfiles that span multiple disks are not supported)"
    )
