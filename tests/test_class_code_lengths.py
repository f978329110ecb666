"""The network class's `torch.narrow` lengths are lifted out of its forward's text, so that two builds whose
class scores are 80 and 81 wide have one forward, and written back as numbers or as `self.<attribute>`."""

from cnndsl.backends.class_code import Step, forward_lines, lifted_lengths, shown_lengths
from cnndsl.ops.torch_code import Arg, Call


def _scores(width: int) -> list[Step]:
    return [
        Step("boxes", Call("torch", "narrow", (Arg(0), 1, 0, 64)), ("x",)),
        Step(None, Call("torch", "sigmoid", (Call("torch", "narrow", (Arg(0), 1, 64, width)),)), ("x",)),
    ]


def test_narrow_lengths_are_lifted_and_the_forwards_of_two_widths_read_alike():
    steps, numbers = lifted_lengths(_scores(80))
    other, other_numbers = lifted_lengths(_scores(81))
    assert numbers == [64, 80] and other_numbers == [64, 81]
    assert forward_lines(steps) == forward_lines(other)


def test_lifted_lengths_are_written_as_their_numbers_or_an_attribute():
    steps, numbers = lifted_lengths(_scores(80))
    assert forward_lines(shown_lengths(steps, numbers)) == forward_lines(_scores(80))
    assert forward_lines(shown_lengths(steps, [64, "self.classes"])) == [
        "boxes = torch.narrow(x, 1, 0, 64)",
        "return torch.sigmoid(torch.narrow(x, 1, 64, self.classes))",
    ]
