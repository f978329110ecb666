"""Ultralytics' TorchVision row (`[512, resnet18, DEFAULT, True, 2]`): a torchvision model loaded by name,
unwrapped into the Sequential of its children less the last `truncate`, written with the library's blocks.

The import reads the named network's arguments from the shipped library (`network resnet18 = resnet([2, 2,
2, 2], basic)`), so every network of the library's ResNet, VGG and MobileNetV3 families imports: a ResNet with
the stem and 1 to 4 stages, the others as their `features` (truncate 2; MobileNetV3's through the library's
own `mobilenet_v3_features`). A name the library does not hold, or whose children the import does not know,
is refused at its row. The weights the row names (`DEFAULT`) are
not fetched: they come with the model's state_dict, like every other module's."""

from __future__ import annotations

from ..core.resources import library_dir
from ..front.load import Loader
from ..graph.bind import resolve_network
from .ultralytics_blocks import BLOCKS
from .ultralytics_more import Written, padded

# torchvision's ResNet, as `list(model.children())`: conv1, bn1, relu, maxpool, layer1-4, avgpool, fc
STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))  # each layer's base width and first stride
KEPT_RESNET = range(4, 9)  # children kept: from the stem (4) to layer4 (8); avgpool and fc Ultralytics'
# Sequential would run unflattened, so a truncate that keeps them is refused
EXPANSION = {"basic": 1, "bottleneck": 4}
# The library's `basic` and `bottleneck` infer their projections, which `check --strict` warns of: here
# torchvision's downsample is written out (conv1x1 with the stride, then its norm). `BN` is the model's norm.
BLOCKS.update(
    {
        "resnet_basic": (
            """block resnet_basic_body(c, s) { conv3x3(c, s=s), BN, relu, conv3x3(c), BN }
block resnet_basic(c, s=1) {  # torchvision's BasicBlock (the library's `basic`)
    if s != 1 or in.c != c { residual { resnet_basic_body(c, s) } shortcut { conv1x1(c, s=s), BN } }
    else { residual { resnet_basic_body(c, s) } }
    relu
}""",
            (),
        ),
        "resnet_bottleneck": (
            """block resnet_bottleneck_body(c, s, groups, width) {
    let inner = c * width // 64 * groups
    conv1x1(inner), BN, relu, conv3x3(inner, s=s, g=groups), BN, relu, conv1x1(4 * c), BN
}
block resnet_bottleneck(c, s=1, groups=1, width=64) {  # torchvision's Bottleneck (the library's `bottleneck`)
    if s != 1 or in.c != 4 * c {
        residual { resnet_bottleneck_body(c, s, groups, width) } shortcut { conv1x1(4 * c, s=s), BN }
    } else { residual { resnet_bottleneck_body(c, s, groups, width) } }
    relu
}""",
            (),
        ),
    }
)


FAMILIES = {"resnet": "resnet", "vgg": "vgg", "mobilenet": "mobilenet_v3"}  # library file -> the family's network
FEATURES_WIDTH = {"vgg": 512, "mobilenet_v3": None}  # the features' channels (MobileNetV3's: 960 or 576)


def library_network(name: str) -> tuple[str, dict] | None:
    """The family of library network `name` and the arguments the library gives it, or None where the import
    does not write that family (or a dilated ResNet)."""
    for file, family in FAMILIES.items():
        module = Loader().load_path(library_dir() / f"{file}.cnn")
        if name not in module.networks:
            continue
        definition, _, bound = resolve_network(module.env.values[name], {})
        values = dict(bound.values)
        if definition.name != family or family == "resnet" and any(values["dilate"]):
            return None
        if family == "resnet":
            values["unit"] = values["unit"].definition.name
        return family, values
    return None


class TorchVisionModules:
    """`m_TorchVision` for the row converter; the block it writes goes to `torchvision_blocks`."""

    def m_TorchVision(self, row, args, inputs):
        c, name, _weights, unwrap, truncate, split = padded(
            row, args, [None, None, "DEFAULT", True, 2, False], "TorchVision", required=2
        )
        if row.repeats != 1 or unwrap is not True or split is not False:
            raise row.error("is imported once per row, unwrapped (unwrap True) and not split")
        found = library_network(name) if isinstance(name, str) and name.isidentifier() else None
        if found is None:
            raise row.error(
                f"loads torchvision's `{name}`, which the import does not write",
                "the import writes the library's ResNets (resnet18 ... resnet152, resnext*, wide_resnet*), VGGs "
                "(vgg11 ... vgg19_bn) and MobileNetV3s (mobilenet_v3_large, mobilenet_v3_small)",
            )
        family, values = found
        if family == "resnet":
            return self._resnet_row(row, c, name, values, truncate)
        if truncate != 2 or isinstance(truncate, bool):
            raise row.error(f"keeps {name}'s features and more or less than them (truncate {truncate!r}); "
                            "the import keeps its features (truncate 2)")  # fmt: skip
        small = family == "mobilenet_v3" and values["small"]
        width = FEATURES_WIDTH[family] or (576 if small else 960)
        if c != width:
            raise row.error(f"declares {c!r} channels where {name}'s features give {width}")
        block = f"{name}_features"
        if family == "vgg":
            norm = ", BN" if values["batchnorm"] else ""
            body = f"for c, n in zip([64, 128, 256, 512, 512], {values['depths']}) {{ (conv3x3(c){norm}, relu) * n, maxpool }}"
        else:  # torchvision's norms (eps 1e-3, momentum 0.01), where DetectionModel leaves them
            momentum = 0.01 if self.model.rows[-1].module == "Classify" else 0.03
            body = f"defaults conv(bias=false)\n    defaults bn(eps=0.001, momentum={momentum})\n"
            body += f"    mobilenet_v3_features({'true' if small else 'false'})"
        importing = "import mobilenet\n" if family == "mobilenet_v3" else ""
        head = f"block {block} {{  # torchvision's {name} less its last 2 children, as Ultralytics' TorchVision"
        self.torchvision_blocks[block] = f"{importing}{head}\n    {body}\n}}"
        return Written(block, str(width))

    def _resnet_row(self, row, c, name: str, resnet: dict, truncate) -> Written:
        kept = 10 - truncate if isinstance(truncate, int) and not isinstance(truncate, bool) else -1
        if kept not in KEPT_RESNET:
            raise row.error(
                f"keeps {kept} of {name}'s 10 children (truncate {truncate!r}); the import keeps the stem and "
                f"1 to 4 stages (truncate 2 to 6)"
            )
        stages = kept - 4
        width = 64 if not stages else STAGES[stages - 1][0] * EXPANSION[resnet["unit"]]
        if c != width:
            raise row.error(f"declares {c!r} channels where {name}'s first {kept} children give {width}")
        block = f"{name}_features" + f"{kept}" * (kept != 8)
        self.used.add(f"resnet_{resnet['unit']}")
        self.torchvision_blocks[block] = _resnet_block(block, name, resnet, stages, truncate)
        return Written(block, str(width))


def _resnet_block(block: str, name: str, resnet: dict, stages: int, truncate: int) -> str:
    """The block of the kept children: the stem and `stages` stages of the library's unit blocks."""
    unit, depths = resnet["unit"], resnet["depths"]
    grouped = f", {resnet['groups']}, {resnet['width']}" if (resnet["groups"], resnet["width"]) != (1, 64) else ""
    lines = [
        f"block {block} {{  # torchvision's {name} less its last {truncate} children, as Ultralytics' TorchVision",
        "    defaults conv(bias=false)",
        "    conv7x7(64, s=2), BN, relu, maxpool3x3(s=2, p=1)",
    ]
    for (c, s), n in list(zip(STAGES, depths, strict=True))[:stages]:
        stride = f", {s} if i == 0 else 1" if s != 1 else (", 1" if grouped else "")
        lines.append(f"    stage layer {{ resnet_{unit}({c}{stride}{grouped}) x {n} }}")
    return "\n".join([*lines, "}"])
