"""torchvision, imported for its datasets and transforms v2 only.

A torchvision wheel built for another torch cannot register its C ops (`torchvision::nms`) and fails on
import; datasets and transforms v2 need none of them, so the module that registers their meta kernels is
then stubbed and the import retried.
"""

from __future__ import annotations

import sys
import types

from ..core.errors import FileProblem


def torchvision():
    """The `torchvision` package, or a FileProblem saying how to install it."""
    try:
        import torchvision as module
    except ModuleNotFoundError:
        raise FileProblem(
            "`cnndsl train` reads images with torchvision, which is not installed",
            hint="pip install 'cnndsl[train]' (or torchvision matching your torch)",
        ) from None
    except RuntimeError:
        for name in [name for name in sys.modules if name == "torchvision" or name.startswith("torchvision.")]:
            del sys.modules[name]
        sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
        import torchvision as module
    return module


def transforms_v2():
    """`torchvision.transforms.v2` and `torchvision.tv_tensors`."""
    torchvision()
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    return v2, tv_tensors
