"""Stage and block names become PyTorch module attributes (`self.layer1.conv1`): the names that cannot.

Listed here rather than read from torch, so that `cnndsl check` refuses them without importing it;
tests/test_security.py checks the list against the installed torch.
"""

from __future__ import annotations

import keyword

# dir(torch.fx.GraphModule) without its private names, as of torch 2.13
MODULE_ATTRIBUTES = frozenset(
    {
        "T_destination",
        "add_module",
        "add_submodule",
        "apply",
        "bfloat16",
        "buffers",
        "call_super_init",
        "children",
        "code",
        "compile",
        "cpu",
        "cuda",
        "delete_all_unused_submodules",
        "delete_submodule",
        "double",
        "dump_patches",
        "eval",
        "extra_repr",
        "float",
        "forward",
        "get_buffer",
        "get_extra_state",
        "get_parameter",
        "get_submodule",
        "graph",
        "half",
        "ipu",
        "load_state_dict",
        "meta",
        "modules",
        "mtia",
        "named_buffers",
        "named_children",
        "named_modules",
        "named_parameters",
        "parameters",
        "print_readable",
        "recompile",
        "register_backward_hook",
        "register_buffer",
        "register_forward_hook",
        "register_forward_pre_hook",
        "register_full_backward_hook",
        "register_full_backward_pre_hook",
        "register_load_state_dict_post_hook",
        "register_load_state_dict_pre_hook",
        "register_module",
        "register_parameter",
        "register_state_dict_post_hook",
        "register_state_dict_pre_hook",
        "requires_grad_",
        "set_extra_state",
        "set_submodule",
        "shape_env",
        "share_memory",
        "state_dict",
        "to",
        "to_empty",
        "to_folder",
        "train",
        "training",
        "type",
        "xpu",
        "zero_grad",
    }
)


def why_not_a_module_name(name: str) -> str | None:
    """Why `name` cannot name a PyTorch module, or None when it can."""
    if keyword.iskeyword(name):
        return "it is a Python keyword"
    if name in MODULE_ATTRIBUTES:
        return "it is an attribute every PyTorch module has"
    if name.startswith("_"):
        return "names that start with `_` are PyTorch's own"
    return None
