"""Math for family rules: RegNet's and EfficientNet's width and depth rules, written in the language,
give exactly the numbers torchvision's own functions compute."""

from __future__ import annotations

import math

import pytest

from cnndsl.core.errors import ValueProblem
from cnndsl.front.load import Loader
from tests.oracles import torchvision_models

# torchvision's `BlockParams.from_init_params` and `_adjust_widths_groups_compatibilty`, as a library
# file would write them. `_make_divisible(v, g)` is `max(g, floor(v + g / 2) // g * g)`, plus g when that
# rounds down by more than 10%; `int(x)` of a positive x is `floor(x)`.
REGNET_RULE = """
let block_widths = [round(w_0 * w_m ^ round(log((d * w_a + w_0) / w_0) / log(w_m)) / 8) * 8 for d in range(depth)]
let starts = [d for d in range(depth) if d == 0 or block_widths[d] != block_widths[d - 1]]
let depths = [(starts[i + 1] if i + 1 < len(starts) else depth) - starts[i] for i in range(len(starts))]
let bottlenecks = [floor(block_widths[d] * bottleneck) for d in starts]
let groups = [min(group_width, w) for w in bottlenecks]
let rounded = [max(g, floor(w + g / 2) // g * g) for w, g in zip(bottlenecks, groups)]
let divisible = [r + (g if r < 0.9 * w else 0) for r, w, g in zip(rounded, bottlenecks, groups)]
let widths = [floor(w / bottleneck) for w in divisible]
"""

# EfficientNet's `adjust_channels` (`_make_divisible(c * width_mult, 8)`) and `adjust_depth`.
EFFICIENTNET_RULE = """
let base = [(32, 16, 1), (16, 24, 2), (24, 40, 2), (40, 80, 3), (80, 112, 3), (112, 192, 4), (192, 320, 1)]
let scaled = [(c_in * width_mult, c_out * width_mult, n) for c_in, c_out, n in base]
let stages = [(max(8, floor(i + 4) // 8 * 8), max(8, floor(o + 4) // 8 * 8), i, o, n) for i, o, n in scaled]
let channels = [(a + (8 if a < 0.9 * i else 0), b + (8 if b < 0.9 * o else 0)) for a, b, i, o, n in stages]
let depths = [ceil(n * depth_mult) for c_in, c_out, n in base]
"""


def evaluate(rule: str, **params) -> dict:
    """The values a rule's top-level `let`s bind, with `params` bound before it."""
    header = "".join(f"let {name} = {value!r}\n" for name, value in params.items())
    return Loader().load_text(header + rule, "rule.cnn").env.values


def _regnet_settings() -> dict[str, tuple[dict, object]]:
    """Each torchvision RegNet's `from_init_params` arguments and the BlockParams it computes."""
    regnet = torchvision_models().regnet
    calls = {}
    original = regnet.BlockParams.from_init_params
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            regnet.BlockParams, "from_init_params", classmethod(lambda cls, **kwargs: (kwargs, original(**kwargs)))
        )
        patch.setattr(regnet, "_regnet", lambda params, weights, progress, **kwargs: params)
        for name in regnet.__all__:
            if name.startswith("regnet_"):
                calls[name] = getattr(regnet, name)()
    return calls


REGNETS = _regnet_settings()


def test_every_torchvision_regnet_is_covered():
    assert len(REGNETS) == 15


@pytest.mark.parametrize("name", sorted(REGNETS))
def test_regnet_widths_from_the_formula_equal_torchvision(name):
    kwargs, expected = REGNETS[name]
    values = evaluate(
        REGNET_RULE,
        depth=kwargs["depth"],
        w_0=kwargs["w_0"],
        w_a=kwargs["w_a"],
        w_m=kwargs["w_m"],
        group_width=kwargs["group_width"],
        bottleneck=kwargs.get("bottleneck_multiplier", 1.0),
    )
    assert values["widths"] == expected.widths
    assert values["depths"] == expected.depths
    assert values["groups"] == expected.group_widths


@pytest.mark.parametrize("variant", [f"efficientnet_b{i}" for i in range(8)])
def test_efficientnet_channels_and_depths_from_the_formula_equal_torchvision(variant):
    efficientnet = torchvision_models().efficientnet
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(efficientnet, "_efficientnet", lambda setting, *args, **kwargs: setting)
        setting = getattr(efficientnet, variant)()
    width_mult, depth_mult = _mults(variant)
    values = evaluate(EFFICIENTNET_RULE, width_mult=width_mult, depth_mult=depth_mult)
    assert values["channels"] == [(c.input_channels, c.out_channels) for c in setting]
    assert values["depths"] == [c.num_layers for c in setting]


def _mults(variant: str) -> tuple[float, float]:
    """The (width, depth) multipliers torchvision's constructor passes to `_efficientnet_conf`."""
    efficientnet = torchvision_models().efficientnet
    seen = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(efficientnet, "_efficientnet_conf", lambda arch, **kwargs: seen.update(kwargs) or ([], None))
        patch.setattr(efficientnet, "_efficientnet", lambda *args, **kwargs: None)
        getattr(efficientnet, variant)()
    return seen["width_mult"], seen["depth_mult"]


@pytest.mark.parametrize("value", [3, 8, 15.9, 16, 19.99, 20, 24.5, 36, 37.5, 72.2, 100, 1000.5])
def test_make_divisible_in_the_language_equals_torchvision(value):
    make_divisible = torchvision_models()._utils._make_divisible
    rule = "let r = max(8, floor(v + 4) // 8 * 8)\nlet result = r + (8 if r < 0.9 * v else 0)\n"
    assert evaluate(rule, v=value)["result"] == make_divisible(value, 8)


def test_math_functions_by_hand():
    values = evaluate(
        "let a = log(8, 2)\nlet b = exp(0)\nlet c = sqrt(2.25)\nlet d = pow(2, 10)\n"
        "let e = round(2.5)\nlet f = round(3.14159, 2)\nlet g = ceil(2.1)\nlet h = floor(-2.1)\n"
        "let i = abs(-3)\nlet j = log(math_e)\nlet k = [x * x for x in range(5) if x != 2]\n"
        "let m = round(2.6) * 8\nlet n = gcd(48, 64)\nlet o = gcd(512 / 2, 96)\n",
        math_e=math.e,
    )
    assert (values["a"], values["b"], values["c"], values["d"]) == (3.0, 1.0, 1.5, 1024)
    assert (values["e"], values["f"], values["g"], values["h"], values["i"]) == (2, 3.14, 3, -3, 3)
    assert values["j"] == 1.0 and values["k"] == [0, 1, 9, 16]
    assert values["m"] == 24  # `f(x) * 8`: a product after a call, once read as a layer's repetition
    assert (values["n"], values["o"]) == (math.gcd(48, 64), math.gcd(256, 96)) == (16, 32)  # DWConv's groups


@pytest.mark.parametrize(
    "expression,message",
    [
        ("exp(1000)", "rule.cnn:1:9: error: exp(1000) is too large for a size or count"),
        ("exp(100)", "rule.cnn:1:9: error: 2.69e+43 is too large for a size or count"),
        ("pow(2, 65)", "rule.cnn:1:9: error: 2^65 is too large for a size or count"),
        ("0.5 ^ -100", "rule.cnn:1:9: error: 0.5^-100 is too large for a size or count"),
        ("log(0)", "rule.cnn:1:9: error: log(0) is not defined\nhint: log needs a number above 0"),
        ("log(8, 1)", "rule.cnn:1:9: error: log to the base 1 is not defined\nhint: a base is above 0 and not 1"),
        ("sqrt(-1)", "rule.cnn:1:9: error: sqrt(-1) is not a real number"),
        ("floor([1])", "rule.cnn:1:9: error: `floor` needs numbers, got [1]"),
        ("gcd(12, 4.5)", "rule.cnn:1:9: error: `gcd` needs whole numbers, got 4.5"),
        ("[x for x, y in [1]]", "rule.cnn:1:24: error: cannot unpack 1 into x, y"),
        ("[x for x in 3]", "rule.cnn:1:21: error: `for` needs a list to walk over, got 3"),
    ],
)
def test_math_errors_are_located(expression, message):
    with pytest.raises(ValueProblem) as caught:
        evaluate(f"let v = {expression}\n")
    assert str(caught.value) == message
