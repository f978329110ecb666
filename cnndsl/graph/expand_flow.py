"""Expanding control flow: groups and stages, repetitions, `for`, `if` and `let`; each loop is refused at
its first turn when the rest would pass the node or step limit."""

from __future__ import annotations

from typing import Any

from .. import ops
from ..core.errors import CnnDslError, LimitProblem, SourcePos, ValueProblem
from ..front import syntax as ast
from ..front.evaluate import shown
from .frame import Frame


class ControlFlow:
    """The Expander's statements that scope, repeat or choose bodies."""

    def _Group(self, stmt: ast.Group, frame: Frame) -> None:
        self.seq(stmt.body, frame.but(env=frame.env.child()))

    def _Stage(self, stmt: ast.Stage, frame: Frame) -> None:
        group = frame.group.open(stmt.name or "stage", "stage", stmt.name or "stage", stmt.pos)
        self.seq(stmt.body, frame.but(env=frame.env.child(), group=group))

    def _Repeat(self, stmt: ast.Repeat, frame: Frame) -> None:
        count = self.evaluate(stmt.count, frame.env)
        try:
            count = ops.base.whole(count, "a repetition count")
        except CnnDslError as error:
            raise error.at(stmt.count.pos)
        if count > self.builder.max_nodes:
            raise LimitProblem(
                f"{count:,} repetitions exceed the limit of {self.builder.max_nodes:,} nodes",
                stmt.count.pos,
                "check the count, or raise the limit with --max-nodes",
            )
        body = ast.Seq([stmt.item])
        for index in self._turns(count, stmt.count.pos, "repetitions"):
            env = frame.env.child(i=index) if stmt.binds_index else frame.env.child()
            self.seq(body, frame.but(env=env))

    def _turns(self, count: int, pos: SourcePos, what: str):
        """A loop's turn indexes; after the first turn, refuse at once if the rest would pass a limit."""
        for index in range(count):
            nodes, steps = self.graph.number_of_nodes(), self.steps_left
            self._step(pos)
            yield index
            if index == 0:
                self._refuse_rest(self.graph.number_of_nodes() - nodes, steps - self.steps_left, count, pos, what)

    def _refuse_rest(self, nodes: int, steps: int, count: int, pos: SourcePos, what: str) -> None:
        limit = self.builder.max_nodes
        if nodes * (count - 1) > limit - self.graph.number_of_nodes():
            raise LimitProblem(
                f"{count:,} {what} of {nodes:,} node{'s' * (nodes != 1)} each exceed the limit of {limit:,} nodes",
                pos,
                "check the count, or raise the limit with --max-nodes",
            )
        if steps * (count - 1) > self.steps_left:
            raise self._too_many_steps(pos)

    def _For(self, stmt: ast.For, frame: Frame) -> None:
        items = self.evaluate(stmt.iterable, frame.env)
        if not isinstance(items, (list, tuple)):
            raise ValueProblem(f"`for` needs a list to walk over, got {shown(items)}", stmt.iterable.pos)
        for index in self._turns(len(items), stmt.iterable.pos, "loop turns"):
            values = self._unpack(stmt, items[index])
            self.seq(stmt.body, frame.but(env=frame.env.child(**values)))

    def _unpack(self, stmt: ast.For, item: Any) -> dict[str, Any]:
        if len(stmt.names) == 1:
            return {stmt.names[0]: item}
        if not isinstance(item, (list, tuple)) or len(item) != len(stmt.names):
            raise ValueProblem(f"cannot unpack {shown(item)} into {', '.join(stmt.names)}", stmt.iterable.pos)
        return dict(zip(stmt.names, item))

    def _If(self, stmt: ast.If, frame: Frame) -> None:
        for condition, body in stmt.branches:
            if self.evaluate._truth(condition, frame.env):
                return self.seq(body, frame.but(env=frame.env.child()))
        if stmt.otherwise is not None:
            self.seq(stmt.otherwise, frame.but(env=frame.env.child()))

    def _Let(self, stmt: ast.Let, frame: Frame) -> None:
        frame.env.values[stmt.name] = self.evaluate(stmt.value, frame.env)
