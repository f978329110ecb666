"""Reading Caffe's files with the `protobuf` package against BVLC's caffe.proto, without Caffe or protoc.

caffe.proto beside this module is BVLC/caffe's src/caffe/proto/caffe.proto verbatim (last changed in
828dd10044, read at 9b89154018). caffe.desc is its FileDescriptorSet, made once by
`pip install --no-deps --target pkgs grpcio-tools==1.85.4` and
`PYTHONPATH=pkgs python -m grpc_tools.protoc -I. --descriptor_set_out=caffe.desc caffe.proto`.
The descriptor, not a generated caffe_pb2.py, because generated modules are tied to the protobuf release
that made them (they check the runtime's version and protobuf asks that they not be checked in), and
because its message classes are built here in a private pool, which never clashes with another
caffe.proto registered by an installed pycaffe or ONNX tool."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from ..core.errors import CnnDslError, SourcePos

LARGEST_MODEL = 2**31 - 1  # protobuf's own limit for one message


@cache
def net_parameter():
    """The NetParameter message class, built from caffe.desc in a pool of its own."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    files = descriptor_pb2.FileDescriptorSet.FromString((Path(__file__).with_name("caffe.desc")).read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for proto in files.file:
        pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("caffe.NetParameter"))


@dataclass
class LayerLines:
    """Where a top-level `layer { ... }` (or V1 `layers`) sits: its first and last line and the line of each key."""

    first: int
    last: int = 0
    keys: dict[str, int] = field(default_factory=dict)


_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|#[^\n]*|[{}<>]|\n|[A-Za-z_][\w.]*')


def layer_lines(text: str) -> dict[str, list[LayerLines]]:
    """The lines of every top-level `layer` and `layers` block, in order (protobuf's parser keeps none)."""
    found: dict[str, list[LayerLines]] = {"layer": [], "layers": []}
    depth, line, previous, current = 0, 1, "", None
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token == "\n":
            line += 1
        elif token in "{<":
            if depth == 0 and previous in found:
                current = LayerLines(line)
                found[previous].append(current)
            depth += 1
        elif token in "}>":
            depth = max(depth - 1, 0)
            if depth == 0 and current is not None:
                current.last, current = line, None
        elif token[0] not in "\"'#":
            if current is not None:
                current.keys.setdefault(token, line)
            previous = token
    return found


def read_prototxt(text: str, file: str):
    """The NetParameter of a prototxt; text that is not valid against caffe.proto is a located error."""
    from google.protobuf import text_format

    net = net_parameter()()
    try:
        text_format.Parse(text, net)
    except text_format.ParseError as error:
        message = re.sub(r"^\d+:\d+ : ('[^\n]*': )?", "", str(error))  # the position and the quoted line
        line, column = error.GetLine() or 1, error.GetColumn() or 1
        raise CnnDslError(
            f"not a valid Caffe prototxt: {message}",
            SourcePos(file, line, column),
            "the file must parse against BVLC's caffe.proto (cnndsl/importers/caffe.proto)",
        ) from None
    return net


def read_caffemodel(path: str | Path):
    """The NetParameter of a binary .caffemodel."""
    from google.protobuf.message import DecodeError

    path = Path(path)
    try:
        size = path.stat().st_size
        if size > LARGEST_MODEL:
            raise CnnDslError(f"{path}: {size} bytes is more than a protobuf message can hold")
        data = path.read_bytes()
    except OSError as error:
        raise CnnDslError(f"{path}: cannot read: {error.strerror}") from None
    try:
        return net_parameter().FromString(data)
    except DecodeError as error:
        raise CnnDslError(f"{path}: not a Caffe NetParameter in binary protobuf: {error}") from None
