"""What a run prints: a live tqdm bar per epoch in a terminal; piped, one line per epoch between a short
header and footer, so logs stay readable."""

from __future__ import annotations

import sys


class Display:
    def __init__(self, stream=None, enabled: bool = True):
        self.stream = stream or sys.stdout
        self.enabled = enabled
        self.live = enabled and self.stream.isatty()

    def say(self, text: str) -> None:
        if self.enabled:
            print(text, file=self.stream, flush=True)

    def bar(self, epoch: int, epochs: int, steps: int, done: int):
        """A tqdm bar in a terminal, else a bar that shows nothing."""
        from tqdm import tqdm

        return tqdm(
            total=steps,
            initial=done,
            desc=f"epoch {epoch}/{epochs}",
            unit="step",
            file=self.stream,
            disable=not self.live,
            leave=False,
            dynamic_ncols=True,
        )


def epoch_line(row: dict, metric: str, epochs: int, images_per_second: float) -> str:
    return (
        f"epoch {row['epoch']}/{epochs}  train_loss {row['train_loss']:.4f}  val_loss {row['val_loss']:.4f}  "
        f"{metric} {row[metric]:.4f}  lr {row['lr']:.3g}  {images_per_second:,.0f} img/s"
    )
