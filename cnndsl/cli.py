"""The `cnndsl` command: thin click wrappers over the Python API."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .api import load
from .backends import formats
from .backends.diagram_options import DIAGRAM_OPTIONS, diagram_suffixes
from .backends.formats import DIAGRAM_FORMATS, FORMATS
from .core.atomic import write_atomically
from .core.errors import CnnDslError
from .core.options import Declared
from .core.resources import DEFAULT_MAX_NODES
from .core.version import __version__
from .front.diagnostics import file_text, render_error
from .front.evaluate import LARGEST, Env, Evaluator, no_incoming
from .ops import format_shape


def _parse_shape(ctx, param, value: str | None) -> tuple[int, ...] | dict[str, tuple[int, ...]] | None:
    """`3x224x224` for the first input; `image=3x640x640,prompts=4x80x80` names inputs by their labels."""
    if value is None:
        return None
    if "=" not in value:
        return _one_shape(value)
    named = {}
    for item in value.split(","):
        name, _, shape = item.partition("=")
        if not name.isidentifier() or name in named:
            shown = repr(item) if len(item) <= 40 else repr(item[:40]) + "..."
            raise click.BadParameter(f"expected NAME=CxHxW, each name once, like image=3x640x640, got {shown}")
        named[name] = _one_shape(shape)
    return named


def _one_shape(value: str) -> tuple[int, ...]:
    parts = value.lower().replace("×", "x").split("x")
    shown = repr(value) if len(value) <= 40 else repr(value[:40]) + "..."
    if not 1 <= len(parts) <= 6 or not all(part.isascii() and part.isdigit() for part in parts):  # ops.base.MAX_RANK
        raise click.BadParameter(f"expected CxHxW like 3x224x224, got {shown}")
    if any(len(part.lstrip("0")) > len(str(LARGEST)) or int(part) > LARGEST for part in parts):
        raise click.BadParameter(f"{shown} has a dimension larger than any size cnndsl accepts (2^53)")
    if any(int(part) == 0 for part in parts):
        raise click.BadParameter(f"expected CxHxW of sizes of at least 1, got {shown}")
    return tuple(int(part) for part in parts)


INPUT_HELP = "Override the input shape; NAME=CxHxW[,NAME=CxHxW] names inputs by their labels."


def _parse_params(ctx, param, values: tuple[str, ...]) -> dict[str, Any]:
    """`-p classes=10 -p depths=[3,4,6,3]`: values are cnndsl expressions."""
    if not values:
        return {}
    from .front.parser import parse

    result = {}
    for item in values:
        name, sep, text = item.partition("=")
        if not sep or not name.isidentifier():
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}")
        program = parse(f"let value = {text}", f"<-p {name}>")
        result[name] = Evaluator(no_incoming)(program.definitions[0].value, Env())
    return result


SANDBOX = click.option(
    "--sandbox", is_flag=True, help="Imports only from the importing file's folder (and below) and the library."
)


def _click_option(declared: Declared, brief: bool):
    """The click option of a declared one: a flag for a bool, a range from its minimum, a choice of few values."""
    spec = declared.spec
    help_text = f"Diagram: {spec.brief}." if brief and spec.brief else spec.help
    kind: Any = None
    if declared.kind is bool:
        return click.option(declared.flag, is_flag=True, help=help_text)
    if spec.choices:
        kind = click.Choice(spec.choices)
    elif declared.kind is int:
        kind = click.IntRange(spec.minimum)
    elif declared.kind is float:
        kind = click.FloatRange(min=spec.minimum, min_open=True)
    shown = declared.default is not None
    return click.option(
        declared.flag, type=kind, default=declared.default, show_default=shown, metavar=spec.metavar, help=help_text
    )


def diagram_options(brief: bool):
    """The diagram's options (backends/diagram_options.py) as click options; `brief`: as compile shows them."""

    def decorate(function):
        for declared in reversed(DIAGRAM_OPTIONS):
            function = _click_option(declared, brief)(function)
        return function

    return decorate


def network_options(function):
    """Options shared by every command that loads a network."""
    for option in reversed(
        [
            click.argument("source"),
            click.option(
                "--network", "-n", help="Which network of the file (default: the file's only or eponymous one)."
            ),
            click.option("--input", "input_shape", callback=_parse_shape, metavar="CxHxW", help=INPUT_HELP),
            click.option(
                "--param",
                "-p",
                "params",
                multiple=True,
                callback=_parse_params,
                metavar="NAME=VALUE",
                help="Set a network parameter, e.g. -p classes=10.",
            ),
            click.option(
                "--max-nodes",
                type=click.IntRange(1),
                default=DEFAULT_MAX_NODES,
                show_default=True,
                help="Refuse networks that expand to more nodes (compile's default: 1,000 for --to python and pt2; "
                "for pt2 it also bounds the operators torch.export traces, 100 by default).",
            ),
            SANDBOX,
        ]
    ):
        function = option(function)
    return function


def _load(source, network, input_shape, params, max_nodes, sandbox):

    return load(source, network=network, input=input_shape, max_nodes=max_nodes, sandbox=sandbox, **params)


class _Cli(click.Group):
    """Prints CnnDslErrors as located messages and exits 1; a traceback only with --debug. `train` and
    `predict` are built on first use, so that other commands never import cnndsl.train."""

    TRAINING = ("train", "predict")

    def list_commands(self, ctx):
        return sorted([*super().list_commands(ctx), *self.TRAINING])

    def get_command(self, ctx, name):
        if name in self.TRAINING:
            from .train import commands

            return getattr(commands, f"{name}_command")(_parse_params, _parse_shape)
        return super().get_command(ctx, name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CnnDslError as error:
            if ctx.params.get("debug"):
                raise
            click.echo(render_error(error), err=True)
            ctx.exit(1)
        except MemoryError:  # where no layer is to blame: the backends name the tensor where they can
            if ctx.params.get("debug"):
                raise
            click.echo("error: out of memory\nhint: give cnndsl more memory, or make the network smaller", err=True)
            ctx.exit(1)


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version=__version__, prog_name="cnndsl")  # not read from installed metadata
@click.option("--debug", is_flag=True, help="Show Python tracebacks for errors.")
@click.pass_context
def main(ctx, debug):
    """Convolutional networks written the way papers draw them."""
    ctx.obj = {"debug": debug}


@main.command()
@network_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv", "markdown"]),
    default="table",
    show_default=True,
    help="table: for reading; json and csv: every layer's figures for tools; markdown: for a README.",
)
@click.option("--depth", type=click.IntRange(0), help="Table: fold groups deeper than this into one row each.")
@click.option("--batch", type=click.IntRange(1), default=1, show_default=True, help="Images per batch, for memory.")
@click.option(
    "--dtype",
    type=click.Choice(["float32", "float16", "bfloat16"]),
    default="float32",
    show_default=True,
    help="Value type, for memory.",
)
def summary(source, network, input_shape, params, max_nodes, sandbox, fmt, depth, batch, dtype):
    """Per-layer output shape, params, MACs, memory and receptive field, with totals."""
    if depth is not None and fmt not in ("table",):
        raise click.BadParameter("folds the table only; json, csv and markdown list every layer", param_hint="--depth")
    net = _load(source, network, input_shape, params, max_nodes, sandbox)
    click.echo(net.summary(depth=depth, batch=batch, dtype=dtype).render(fmt))


@main.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--network", "-n", help="Check only this network (default: every network the files define).")
@click.option("--input", "input_shape", callback=_parse_shape, metavar="CxHxW", help=INPUT_HELP)
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    callback=_parse_params,
    metavar="NAME=VALUE",
    help="Set a parameter of the networks that declare it, e.g. -p classes=10.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one object per diagnostic (file, line, column, end, severity, message, hint).",
)
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too.")
@click.option(
    "--max-nodes",
    type=click.IntRange(1),
    default=DEFAULT_MAX_NODES,
    show_default=True,
    help="Refuse networks that expand to more nodes.",
)
@SANDBOX
def check(files, network, input_shape, params, fmt, strict, max_nodes, sandbox):
    """Check every network of each file; print every error and warning with its position."""
    from .check import check as check_sources

    report = check_sources(list(files), network, input_shape, params, max_nodes, sandbox)
    if fmt == "json":
        click.echo(report.to_json(file_text))
    else:
        for diagnostic in report.diagnostics:
            click.echo(render_error(diagnostic), err=True)
        click.echo(report.tally(), err=bool(report.diagnostics))
    if report.failed(strict):
        sys.exit(1)


@main.command(name="import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--from",
    "fmt",
    type=click.Choice(["darknet", "caffe", "ultralytics"]),
    help="The file's format (default: from its suffix).",
)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write the .cnn here (default: standard output).")
@click.option(
    "--weights",
    type=click.Path(dir_okay=False),
    help="The model's weights (Darknet .weights, Caffe .caffemodel, an Ultralytics state_dict).",
)
@click.option("--weights-out", type=click.Path(dir_okay=False), help="Write the weights here as .safetensors.")
def import_command(file, fmt, output, weights, weights_out):
    """Import a Darknet .cfg, Caffe .prototxt or Ultralytics YAML as a readable .cnn file with the same shapes and
    parameters."""
    from .importers import import_file

    text = import_file(file, fmt, weights, weights_out)
    if output:
        write_atomically(output, text)
    else:
        click.echo(text, nl=False)


@main.command(name="list")
@click.argument("pattern", required=False)
def list_command(pattern):
    """The shipped library: every network with its input, params and MACs (PATTERN: a glob like 'resnet*')."""
    from .library import catalogue

    entries = catalogue(pattern)
    if not entries:
        raise click.BadParameter(
            f"no library network's name matches {pattern!r} (`cnndsl list` shows them all)", param_hint="PATTERN"
        )
    width = max([len("network"), *(len(entry.name) for entry in entries)])
    click.echo(f"{'network':<{width}} {'input':>11} {'params':>13} {'MACs':>17}  file")
    for entry in entries:
        click.echo(
            f"{entry.name:<{width}} {format_shape(entry.input_shape):>11} {entry.params:>13,} "
            f"{entry.macs:>17,}  {entry.file.name}"
        )


@main.command(name="compile")
@network_options
@click.option("--to", "fmt", type=click.Choice([row.name for row in FORMATS]), required=True, help="What to produce.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Output file (default: NETWORK.EXT).")
@click.option(
    "--weights",
    metavar="FILE|torchvision",
    help="Weights for --to onnx or pt2: a .pt, .pth or .safetensors checkpoint, or torchvision's published ones.",
)
@click.option("--seed", type=click.IntRange(0), help="Without --weights: draw the random weights from this seed.")
@click.option("--opset", type=click.IntRange(7), help="ONNX opset (default: the newest onnxruntime runs).")
@click.option("--fold-bn", is_flag=True, help="Fold BatchNorm into the preceding convolution (ONNX).")
@click.option(
    "--external-data",
    is_flag=True,
    default=None,
    help="ONNX: weights to OUT.data beside the file (default: only where one file cannot hold them).",
)
@diagram_options(brief=True)
@click.pass_context
def compile_command(ctx, source, network, input_shape, params, max_nodes, sandbox, fmt, output, **options):
    """Compile to ONNX, PyTorch source, a torch.export program, or a diagram."""
    _refuse_options_that_do_not_apply(ctx, fmt)
    if options["seed"] is not None and options["weights"] is not None:
        raise click.UsageError("--seed does not apply with --weights: every weight comes from the checkpoint")
    row = formats.BY_NAME[fmt]
    explicit = ctx.get_parameter_source("max_nodes") is not click.core.ParameterSource.DEFAULT
    if row.max_nodes and not explicit:
        max_nodes = min(max_nodes, row.max_nodes)
    net = _load(source, network, input_shape, params, max_nodes, sandbox)
    target = Path(output or f"{net.name}.{row.suffix}")
    written = formats.write(net, fmt, target, {**options, "note": _note, "max_steps": max_nodes if explicit else None})
    click.echo(f"wrote {' and '.join(map(str, written))}")
    if fmt in formats.applies_to()["seed"] and options["weights"] is None:
        click.echo(f"cnndsl: warning: without --weights, {target} holds {_random_weights(options['seed'])}", err=True)


def _note(text: str) -> None:
    """What a command chose for the user (the depth a figure is drawn at), on stderr."""
    click.echo(f"cnndsl: note: {text}", err=True)


def _random_weights(seed: int | None) -> str:
    if seed is None:
        return "random weights, drawn anew on each run (--seed N draws the same ones every time)"
    return f"random weights drawn from seed {seed}"


def _refuse_options_that_do_not_apply(ctx: click.Context, fmt: str) -> None:
    """An option given for a --to format it does not change (formats.FORMATS says which) is an error, never ignored."""
    from click.core import ParameterSource

    for option, applies in formats.applies_to().items():
        if fmt not in applies and ctx.get_parameter_source(option) in (
            ParameterSource.COMMANDLINE,
            ParameterSource.ENVIRONMENT,
        ):
            flag = "--" + option.replace("_", "-")
            raise click.UsageError(f"{flag} does not apply to --to {fmt}; it applies to --to {' or '.join(applies)}")


@main.command()
@network_options
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    required=True,
    help="net" + diagram_suffixes(),
)
@diagram_options(brief=False)
def draw(source, network, input_shape, params, max_nodes, sandbox, output, **options):
    """Draw the architecture as a paper's figure: stages and blocks as clusters."""
    fmt = Path(output).suffix.lstrip(".").lower()
    if fmt not in DIAGRAM_FORMATS:
        raise click.BadParameter(f"the output must end in {diagram_suffixes()}, not {output!r}", param_hint="-o")
    net = _load(source, network, input_shape, params, max_nodes, sandbox)
    formats.write(net, fmt, Path(output), {**options, "note": _note})
    click.echo(f"wrote {output}")


@main.command(name="weights")
@network_options
@click.argument("checkpoint")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    help="Write the matched weights under the network's names (.safetensors).",
)
@click.option(
    "--partial", is_flag=True, help="Accept a checkpoint that covers only part of the network (strict=False)."
)
def weights_command(source, network, input_shape, params, max_nodes, sandbox, checkpoint, output, partial):
    """Show which checkpoint tensor each layer takes, by name or by structure, and what did not match."""
    from .weights.checkpoint import mapping

    net = _load(source, network, input_shape, params, max_nodes, sandbox)
    found = mapping(net, checkpoint)
    click.echo(found.listing())
    if not found.result.complete and not partial:
        raise found.result.refusal()
    if output:
        found.write(output)
        click.echo(f"wrote {output}")


@main.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--network", "-n", help="Which network of the file to draw.")
@click.option("--input", "input_shape", callback=_parse_shape, metavar="CxHxW", help=INPUT_HELP)
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on; others can then edit the file."
)
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="0 picks a free port.")
@click.option("--depth", type=click.IntRange(0), help="The diagram's depth to start with (the page can change it).")
@click.option(
    "--time-limit",
    type=click.FloatRange(0.5, 600),
    metavar="SECONDS",
    help="How long one analysis may run before it is stopped and the page says so (default 10).",
)
def serve(file, network, input_shape, host, port, depth, time_limit):
    """Edit FILE (default network.cnn) in a local page that redraws its diagram and table as you type."""
    if file is not None and not file.endswith(".cnn"):
        raise click.BadParameter(
            f"expected a .cnn file (a new one is created on the first save), got {file!r}", param_hint="FILE"
        )
    try:
        from .serve import serve as run
        from .serve.document import starter_path
    except ModuleNotFoundError as error:
        raise click.ClickException(f"cnndsl serve needs {error.name}: pip install 'cnndsl[serve]'") from None
    limits = {"time_limit": time_limit} if time_limit is not None else {}  # else the worker's TIME_LIMIT_S
    run(starter_path(file), host, port, network, input_shape, depth, announce=click.echo, **limits)
