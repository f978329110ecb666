"""Image files opened with PIL, every failure a FileProblem naming the file: a truncated or foreign file, or a
decompression bomb (more pixels than twice PIL's `Image.MAX_IMAGE_PIXELS`, which PIL refuses before decoding
them; a 196-megapixel PNG of 190 kB would otherwise take gigabytes)."""

from __future__ import annotations

from contextlib import contextmanager

from ..core.errors import FileProblem

SKIP_HINT = "remove it, or pass --skip-bad"


@contextmanager
def opened(path, what: str = "image", hint: str = SKIP_HINT):
    """PIL's image of the file at `path`, read from a file object (as torchvision's loader reads it: PIL then
    skips its own path handling); decoding inside the block fails as opening does."""
    from PIL import Image

    try:
        with open(path, "rb") as file, Image.open(file) as image:
            yield image
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise FileProblem(f"cannot read {what} {path}: {error}", hint=hint) from None
