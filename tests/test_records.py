"""core/records.py stands in for dataclasses at start-up: a record must behave as the dataclass it replaces
(the oracle here is the standard library's @dataclass with the same fields)."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

from cnndsl.core.errors import SourcePos
from cnndsl.core.records import FrozenRecord, Record
from cnndsl.front import syntax as ast
from cnndsl.ops.torch_code import Arg, Call


class Point(FrozenRecord):
    __slots__ = ("x", "y")


class Box(Record):
    __slots__ = ("label", "items")

    def __init__(self, label: str, items: list) -> None:
        self.label, self.items = label, items


@dataclasses.dataclass(frozen=True)
class DataPoint:
    x: int
    y: int


@dataclasses.dataclass
class DataBox:
    label: str
    items: list


def test_a_frozen_record_is_equal_hashed_and_shown_as_its_dataclass():
    ours, theirs = Point(1, 2), DataPoint(1, 2)
    assert repr(ours) == repr(theirs).replace("DataPoint", "Point") == "Point(x=1, y=2)"
    assert hash(ours) == hash(theirs) == hash((1, 2))
    assert ours == Point(1, 2) and ours != Point(2, 1) and ours != (1, 2)
    assert Point._fields == Point.__match_args__ == ("x", "y")
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'x'"):
        ours.x = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        del ours.y
    with pytest.raises(TypeError, match="Point takes 2 fields, not 1"):
        Point(1)


def test_a_record_is_equal_field_by_field_unhashable_and_shows_itself_inside_itself_as_dots():
    ours, theirs = Box("a", []), DataBox("a", [])
    ours.items.append(ours)
    theirs.items.append(theirs)
    assert repr(ours) == repr(theirs).replace("DataBox", "Box") == "Box(label='a', items=[...])"
    assert Box("b", [1]) == Box("b", [1]) and Box("b", [1]) != Box("b", [2])
    with pytest.raises(TypeError, match="unhashable"):
        hash(Box("b", []))
    with pytest.raises(AttributeError):
        ours.other = 1  # slots: a misspelt field is an error, not a new attribute


@pytest.mark.parametrize(
    "value",
    [
        Point(1, (2, 3)),
        SourcePos("f.cnn", 3, 4),
        Call("torch", "cat", (Arg(0), Arg(1)), (("dim", 1),)),
        ast.Layer(
            SourcePos("f.cnn", 1, 1),
            "conv",
            [ast.Argument(None, ast.Number(SourcePos("f.cnn", 1, 6), 3), SourcePos("f.cnn", 1, 6))],
        ),
    ],
    ids=["point", "position", "torch-code", "syntax"],
)
def test_records_pickle_and_copy_to_equal_records(value):
    assert pickle.loads(pickle.dumps(value)) == value
    assert copy.deepcopy(value) == value and copy.copy(value) == value
