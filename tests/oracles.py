"""Independent references for the tests: torchvision's and timm's model constructors.

The CPU build of torch cannot load torchvision's C ops (`torchvision::nms`); its model constructors
need none of them, and import once the module that registers their meta kernels is stubbed.
"""

from __future__ import annotations

import sys
import types


def torchvision_models():
    """`torchvision.models`, importable on the CPU build of torch."""
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    import torchvision.models

    return torchvision.models
