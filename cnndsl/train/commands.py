"""The `cnndsl train` and `cnndsl predict` commands. cli.py registers them lazily, handing over its own
parsers of `-p NAME=VALUE` and `--input`, so that `cnndsl summary` never imports this package."""

from __future__ import annotations

import json
import sys

import click

from ..api import load
from . import train as run_training
from .options import OPTIMISERS, PRECISIONS, SCHEDULES, TASKS


def _input_option(parse_shape):
    """`--input`, as train and predict take it: the one input's shape, or NAME=CxHxW naming one."""
    return click.option(
        "--input",
        "input_shape",
        callback=parse_shape,
        metavar="CxHxW",
        help="Override the input shape (NAME=CxHxW names an input).",
    )


def _param_option(parse_params):
    """`-p NAME=VALUE`, as train and predict take it."""
    return click.option(
        "--param",
        "-p",
        "params",
        multiple=True,
        callback=parse_params,
        metavar="NAME=VALUE",
        help="Set a network parameter, e.g. -p classes=10.",
    )


def train_command(parse_params, parse_shape) -> click.Command:
    @click.command(name="train")
    @click.argument("source", required=False)
    @click.argument("data", required=False, type=click.Path(file_okay=False))
    @click.option("--network", "-n", "network_name", help="Which network of the file.")
    @_input_option(parse_shape)
    @_param_option(parse_params)
    @click.option("--epochs", type=click.IntRange(1), help="Epochs to train (10).")
    @click.option("--batch", type=click.IntRange(1), help="Images per step, over all processes (32).")
    @click.option("--lr", type=float, help="Peak learning rate (0.1 for sgd, 0.001 for adamw).")
    @click.option("--opt", type=click.Choice(OPTIMISERS), help="Optimizer (sgd: Nesterov momentum 0.9).")
    @click.option("--weight-decay", type=float, help="On weights, not on biases and norms (5e-4).")
    @click.option("--sched", type=click.Choice(SCHEDULES), help="Learning-rate schedule per step (cosine).")
    @click.option("--warmup", type=click.IntRange(0), help="Epochs of linear warm-up (0).")
    @click.option(
        "--step-every", type=click.IntRange(1), help="--sched step: epochs between x0.1 (a third of the run)."
    )
    @click.option("--amp", type=click.Choice(PRECISIONS), help="Mixed precision (auto: bf16/fp16 on GPU, off on CPU).")
    @click.option("--channels-last", is_flag=True, default=None, help="NHWC memory format.")
    @click.option("--compile", is_flag=True, default=None, help="torch.compile the module.")
    @click.option("--ema", type=float, metavar="DECAY", help="Keep and evaluate an exponential moving average.")
    @click.option("--smoothing", type=float, help="Label smoothing (0).")
    @click.option("--seed", type=int, help="Seed of initialisation, order and augmentation (0).")
    @click.option("--deterministic", is_flag=True, default=None, help="Deterministic kernels, for exact resume.")
    @click.option("--workers", type=click.IntRange(0), help="Data-loading processes (0: in the training process).")
    @click.option("--devices", help="cpu, cpu:2, cuda:0 or cuda:0,1 (several train with DDP).")
    @click.option("--weights", help="Start from a checkpoint file or `torchvision`.")
    @click.option("--task", type=click.Choice(TASKS), help="Default: from the network's output.")
    @click.option("--ignore-index", type=int, help="Mask value not trained on (255).")
    @click.option("--skip-bad", is_flag=True, default=None, help="Leave out unreadable images instead of stopping.")
    @click.option("--no-flip", "flip", flag_value=False, default=None, help="No random horizontal flips.")
    @click.option("--out", type=click.Path(file_okay=False), help="Run folder (default runs/NAME-N).")
    @click.option("--resume", type=click.Path(file_okay=False), help="Continue the run in this folder.")
    def train(source, data, network_name, input_shape, params, out, resume, **options):
        """Train a network on a folder of images: DATA/train/<class>/*.png and DATA/val/<class>/*.png
        (or images/ and masks/ for segmentation). See docs/train.md."""
        from .loop import Interrupted

        if resume is None and (source is None or data is None):
            raise click.UsageError("train needs NET and DATA (or --resume RUN_FOLDER)")
        given = {name: value for name, value in options.items() if value is not None}
        if resume is not None and given:
            raise click.UsageError(
                f"--resume continues with the run's own options; leave out --{next(iter(given)).replace('_', '-')}"
            )
        try:
            run_training(
                source,
                data,
                out=out,
                resume=resume,
                params=params or None,
                input=input_shape,
                network_name=network_name,
                **given,
            )
        except Interrupted as stop:
            click.echo(stop.message, err=True)
            sys.exit(128 + stop.signum)

    return train


def predict_command(parse_params, parse_shape) -> click.Command:
    @click.command(name="predict")
    @click.argument("source")
    @click.argument("images", nargs=-1, required=True)
    @click.option("--weights", required=True, type=click.Path(dir_okay=False), help="best.safetensors of a run.")
    @click.option("--network", "-n", "network_name", help="Which network of the file.")
    @_input_option(parse_shape)
    @_param_option(parse_params)
    @click.option("--top", default=5, show_default=True, type=click.IntRange(1), help="Classes shown per image.")
    @click.option(
        "--format",
        "fmt",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="json: a list with one object per image.",
    )
    @click.option(
        "--masks", type=click.Path(file_okay=False), help="Folder for segmentation masks or drawn boxes (default .)."
    )
    def predict(source, images, weights, network_name, input_shape, params, top, fmt, masks):
        """Classify images (top-k with probabilities), write a mask PNG per image, or print a detector's boxes
        and draw them on a PNG per image."""
        from .predict import predict as run_predict

        network = load(source, network=network_name, input=input_shape, **params)
        results = run_predict(network, weights, list(images), top=top, masks_to=masks)
        if fmt == "json":
            click.echo(json.dumps(results, indent=2))
            return
        for result in results:
            if "mask" in result:
                click.echo(f"{result['image']}: wrote {result['mask']}")
            elif "boxes" in result:
                click.echo(f"{result['image']}: {len(result['boxes'])} boxes, drawn in {result['drawn']}")
                for box in result["boxes"]:
                    corners = ", ".join(f"{value:g}" for value in box["box"])
                    click.echo(f"  {box['class']} {box['score']:.3f} at ({corners})")
            else:
                shown = ", ".join(f"{item['class']} {item['prob']:.3f}" for item in result["top"])
                click.echo(f"{result['image']}: {shown}")

    return predict
