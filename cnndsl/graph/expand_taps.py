"""Expanding the points of a network: its input, labelled taps, jumps to a tap, `@in`, and its outputs."""

from __future__ import annotations

from .. import ops
from ..core.errors import CnnDslError, NameProblem, ShapeProblem, SourcePos, SourceWarning, ValueProblem, did_you_mean
from ..front import syntax as ast
from ..front.evaluate import Tap
from .frame import Frame


class Points:
    """The Expander's statements that declare the input, label a point, jump to one or name the outputs."""

    def _Input(self, stmt: ast.Input, frame: Frame, label: str | None = None) -> None:
        if self.cursor is not None and (self.cursor not in self.info.inputs or frame.entry is not None):
            raise ShapeProblem(
                "a network's inputs are declared before its first layer",
                stmt.pos,
                "declare each input at the top of the network (`image: input 3x224x224`), then `@image` to go on from it",
            )
        dims = tuple(self._dimension(dim, frame) for dim in stmt.dims)
        dims = self._override(label, stmt.training) or dims
        if not 1 <= len(dims) <= ops.base.MAX_RANK:
            raise ShapeProblem(
                f"an input has 1 to {ops.base.MAX_RANK} axes (the batch not counted), not {len(dims)}",
                stmt.pos,
                "write C×H×W for an image, N for a vector",
            )
        kind = ops.REGISTRY["input"]
        self.cursor = self.builder.add(kind, {}, dims, stmt.pos, frame.group, [])
        self.info.inputs.append(self.cursor)
        if stmt.training:  # `train input`: only the training forward takes it
            self.info.train_inputs.append(self.cursor)
        self.info.input = next((node for node in self.info.inputs if node not in self.info.train_inputs), None)
        if len(dims) == 3 and dims[2] in (1, 3, 4) and min(dims[0], dims[1]) >= 16:
            self.warnings.append(
                SourceWarning(
                    f"the input {ops.format_shape(dims)} looks channels-last (H×W×C); cnndsl reads C×H×W",
                    stmt.pos,
                    f"for {dims[2]} channels of {dims[0]}×{dims[1]}, write input {dims[2]}x{dims[0]}x{dims[1]}",
                )
            )

    def _override(self, label: str | None, training: bool = False) -> tuple | None:
        """The shape `--input` gives this input: `NAME=CxHxW` names it by its label, a bare shape is the first's
        that the eval forward takes (a `train input` is named)."""
        given = self.input_override
        if isinstance(given, dict):
            return given.get(label or "input")  # an unlabelled input is `input`, as ONNX names it
        return given if self.info.input is None and not training else None

    def _dimension(self, dim: ast.Expr, frame: Frame) -> int:
        try:
            return ops.base.whole(self.evaluate(dim, frame.env), "an input dimension")
        except CnnDslError as error:
            raise error.at(dim.pos)

    def _Jump(self, stmt: ast.Jump, frame: Frame) -> None:
        self.cursor = self._tap(self.evaluate(ast.TapRef(stmt.pos, stmt.tap, stmt.index), frame.env), frame)
        self.pending_edge = "branch"

    def _Labeled(self, stmt: ast.Labeled, frame: Frame) -> None:
        if stmt.label == "in":
            raise NameProblem(
                "`in` cannot label a point: `@in` is the input of the block", stmt.pos, "choose another label"
            )
        self.called_block = None
        if isinstance(stmt.item, ast.Input):
            self._Input(stmt.item, frame, stmt.label)  # its label names it to `--input NAME=CxHxW`
        else:
            self.statement(stmt.item, frame)
        if isinstance(stmt.item, ast.Layer) and self.called_block is not None:
            frame.blocks[stmt.label] = self.called_block  # `b: myblock(64)`: its taps are `@b.t`
        elif isinstance(stmt.item, ast.Layer):
            self.single_layers.add(self.cursor)
        first = frame.taps.get(stmt.label, (None, stmt.pos))[1]
        if first != stmt.pos:  # the same label at the same place is a later turn of a loop: `@t[i]` keeps each
            raise NameProblem(
                f"duplicate tap `{stmt.label}` (first defined at {first})",
                stmt.pos,
                "give each labelled point its own name",
            )
        frame.taps[stmt.label] = (self.cursor, stmt.pos)
        frame.turns.setdefault(stmt.label, []).append(self.cursor)
        self.layers[self.cursor].tap = stmt.label

    def _Output(self, stmt: ast.Output, frame: Frame) -> None:
        info = self.info
        outputs = info.train_outputs if stmt.training else info.outputs
        if stmt.training and self.train_output_at is None:
            self.train_output_at = stmt.pos
        for tap_ref in stmt.taps:
            tap = self.evaluate(tap_ref, frame.env)
            node = self._tap(tap, frame)
            name = tap.name.replace(".", "_")  # `@b.t[-1]` of 3 turns is the output `b_t_2`
            if tap.index is not None:
                *calls, label = tap.name.split(".")
                name += f"_{self._block_frame(calls, frame, tap).turns[label].index(node)}"
            if any(taken == name for taken, _ in outputs):
                raise NameProblem(f"`{tap!r}` is already an output", tap.pos)
            other = info.outputs if stmt.training else info.train_outputs
            if any(taken == name or held == node for taken, held in other):
                raise NameProblem(
                    f"`{tap!r}` is already {'an eval' if stmt.training else 'a training-only'} output",
                    tap.pos,
                    "a tensor is returned either always (`output`) or only in training (`train output`), not both",
                )
            outputs.append((name, node))

    def _tap(self, tap: Tap, frame: Frame) -> int:
        if tap.name == "in":
            entry = self.info.input if frame.entry is None else frame.entry
            if entry is None:
                raise ShapeProblem(
                    "`@in` is the input, which is not declared yet", tap.pos, "start the network with `input 3x224x224`"
                )
            return entry
        *calls, name = tap.name.split(".")
        frame = self._block_frame(calls, frame, tap)
        if name not in frame.taps:
            where = f" in the block call `@{'.'.join(calls)}`" if calls else ""
            raise NameProblem(
                f"undefined tap `@{name}`{where}",
                tap.pos,
                did_you_mean(name, frame.taps) or "label a point first, e.g. `enc1: conv3x3(64)`",
            )
        if tap.index is None:
            return frame.taps[name][0]
        turns = frame.turns[name]
        if not -len(turns) <= tap.index < len(turns):
            raise NameProblem(
                f"`@{tap.name}` is labelled in {len(turns)} turn{'s' * (len(turns) != 1)}, so `{tap!r}` does not exist",
                tap.pos,
                f"number the turns from 0 to {len(turns) - 1}"
                if len(turns) > 1
                else "only a tap inside a loop has more than one turn",
            )
        return turns[tap.index]

    def _block_frame(self, calls: list[str], frame: Frame, tap: Tap) -> Frame:
        """The frame of the block call `@b` (or `@b.c`, a call inside it) whose taps `@b.t` names."""
        for depth, label in enumerate(calls):
            if label not in frame.blocks:
                prefix = ".".join(calls[: depth + 1])
                raise NameProblem(
                    f"`@{prefix}` is not a labelled block call, so `@{tap.name}` names nothing",
                    tap.pos,
                    did_you_mean(label, frame.blocks) or f"label the call, e.g. `{label}: myblock(64)`",
                )
            frame = frame.blocks[label]
        return frame

    def _require_cursor(self, pos: SourcePos) -> int:
        self._current_shape(pos)
        return self.cursor


def check_inputs(info, layers: dict, override: tuple | dict | None, pos: SourcePos) -> None:
    """A network with several inputs labels each (the label names the forward's argument and the ONNX input),
    and `--input` names the one it replaces."""
    names = [layers[node].tap or "input" for node in info.inputs]
    if len(names) > 1:
        for node in info.inputs:
            if layers[node].tap is None:
                raise NameProblem(
                    f"a network with {len(names)} inputs labels each: the label names it to torch, ONNX and --input",
                    layers[node].pos,
                    "write `image: input 3x224x224`",
                )
    shown = ", ".join(names)
    for name in override if isinstance(override, dict) else ():
        if name not in names:
            raise NameProblem(
                f"--input names `{name}`, which is not an input of `{info.name}` (its inputs: {shown})",
                pos,
                did_you_mean(name, names) or "name an input by its label",
            )


def check_bare_override(names: list[str], override: tuple | dict | None, pos: SourcePos) -> None:
    """A bare `--input CxHxW` is the only input's: before expanding, since the other inputs' shapes would not
    fit it, refuse it where the network declares several (`names`, as their labels give them)."""
    if isinstance(override, tuple) and len(names) > 1:
        shape = "x".join(map(str, override))
        raise ValueProblem(
            f"--input {shape} does not say which of the {len(names)} inputs ({', '.join(names)}) it replaces",
            pos,
            f"name it: --input {names[-1]}={shape}",
        )
