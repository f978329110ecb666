"""The networks at `--to pt2`'s operator bound (backends/formats.PT2_STEPS, 100), the costliest shapes per operator
measured: bench/pt2_bound.py times them, tests/test_pt2_bounds.py checks the operators torch.export records.

1 + 16 × 6 + 3 = 100 nodes of four-way branches (an operator each but the input's: 99), and 33 layer norms of three
operators each (permute, layer_norm, permute) and a ReLU (100)."""

AT_THE_BOUND = {  # name: (input, layers, ATen operators torch.export records)
    "branches": (
        "4x8x8",
        "(branch { conv1x1(1) | conv1x1(1) | conv1x1(1) | conv1x1(1) }, relu) x 16, conv1x1(1), relu, relu",
        99,
    ),
    "layernorms": ("8x8x8", "layernorm x 33, relu", 100),
}
ONE_LAYER = ("3x8x8", "conv3x3(4)")  # the anchor: torch's import and export's start
