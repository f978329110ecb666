"""Expanding the structures that fork and join the tensor: residual (with its inferred projection), dense,
branch and scale."""

from __future__ import annotations

from .. import ops
from ..core.errors import ShapeProblem, SourcePos, SourceWarning, ValueProblem
from ..front import syntax as ast
from .frame import Frame
from .ir import input_shapes


class Joins:
    """The Expander's statements whose body runs beside a shortcut or other paths, joined by add, concat or mul."""

    def _Residual(self, stmt: ast.Residual, frame: Frame) -> None:
        fork = self._require_cursor(stmt.pos)
        body_out = self._path(stmt.body, frame, "sequence", stmt.pos, "residual")
        self.cursor, self.pending_edge = fork, "skip"
        shortcut_frame = frame.but(
            env=frame.env.child(), group=frame.group.open("downsample", "downsample", "shortcut", stmt.pos)
        )
        if stmt.shortcut is not None:
            self.seq(stmt.shortcut, shortcut_frame)
        elif self.layers[fork].shape != self.layers[body_out].shape:
            self._project(fork, body_out, stmt.pos, shortcut_frame)
        else:
            frame.group.children.pop()  # identity: no downsample group
        shortcut_out = self.cursor
        self.cursor, self.pending_edge = body_out, "sequence"
        self.add_layer("add", stmt.pos, frame, [(shortcut_out, "skip")])

    def _project(self, fork: int, body_out: int, pos: SourcePos, frame: Frame) -> None:
        """The projection shortcut of ResNet: conv1x1 with the body's stride, then bn."""
        source, target = self.layers[fork].shape, self.layers[body_out].shape
        if len(source) != 3 or len(target) != 3:
            raise ShapeProblem(
                f"a residual cannot project {ops.format_shape(source)} to {ops.format_shape(target)}", pos
            )
        stride = max(1, round(source[1] / target[1]))
        conv = self.add_layer("conv", pos, frame, c=target[0], k=1, s=stride, p=0, bias=False)
        norm = self.add_layer("bn", pos, frame)
        if self.layers[self.cursor].shape != target:
            raise ShapeProblem(
                f"a residual's body turns {ops.format_shape(source)} into {ops.format_shape(target)}, "
                "which no conv1x1 projection matches",
                pos,
                "write the shortcut explicitly: residual { ... } shortcut { ... }",
            )
        added = sum(self._params_of(node) for node in (conv, norm))
        self.warnings.append(
            SourceWarning(
                f"this residual's shortcut is a projection (conv1x1 with stride {stride} + bn, {added:,} parameters), "
                f"inferred because the body turns {ops.format_shape(source)} into {ops.format_shape(target)}",
                pos,
                "write `shortcut { ... }` to state it, or keep the shape for an identity shortcut",
            )
        )

    def _params_of(self, node: int) -> int:
        record = self.layers[node]
        return record.kind.params(record.attrs, input_shapes(self.graph, node))

    def _path(self, body: ast.Seq, frame: Frame, edge: str, pos: SourcePos, what: str) -> int:
        """Expand a sub-sequence from the cursor; it must add at least one layer."""
        start = self.cursor
        self.pending_edge = edge
        self.seq(body, frame.but(env=frame.env.child()))
        if self.cursor == start:
            raise ValueProblem(f"the {what} body is empty", pos, "give it at least one layer")
        return self.cursor

    def _Dense(self, stmt: ast.Dense, frame: Frame) -> None:
        fork = self._require_cursor(stmt.pos)
        group = frame.group.open("dense", "dense", "dense", stmt.pos)
        inner = frame.but(group=group)
        new_features = self._path(stmt.body, inner, "sequence", stmt.pos, "dense")
        self.cursor, self.pending_edge = fork, "concat"
        self.add_layer("concat", stmt.pos, inner, [(new_features, "concat")])

    def _Branch(self, stmt: ast.Branch, frame: Frame) -> None:
        fork = self._require_cursor(stmt.pos)
        ends = []
        for path in stmt.paths:
            self.cursor = fork
            group = frame.group.open("branch", "branch", "branch", stmt.pos)
            ends.append(self._path(path, frame.but(group=group), "branch", stmt.pos, "branch path"))
        self.cursor, self.pending_edge = ends[0], "concat"
        self.add_layer("concat", stmt.pos, frame, [(end, "concat") for end in ends[1:]])

    def _Scale(self, stmt: ast.Scale, frame: Frame) -> None:
        fork = self._require_cursor(stmt.pos)
        group = frame.group.open("scale", "scale", "scale", stmt.pos)
        gate = self._path(stmt.body, frame.but(group=group), "sequence", stmt.pos, "scale")
        self.cursor, self.pending_edge = fork, "skip"
        self.add_layer("mul", stmt.pos, frame, [(gate, "sequence")])
