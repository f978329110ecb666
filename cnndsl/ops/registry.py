"""The registry of layer kinds, filled as it is read: a kind's module is imported when one of its names is
first asked for, so that `cnndsl summary resnet50` imports the 7 modules of the kinds ResNet uses, not all 19.

`cnndsl/ops/__init__.py` declares which module declares which names (`KINDS`) and which spellings
(`PREFIXES`: `conv3x3` is conv's); a name no table knows imports every module, as does reading the registry
whole (iterating it, `len`), so that lists, hints and the docs' layer table always see every kind, in the
order of the table. tests/test_ops_registry.py holds the table to what the modules register.
"""

from __future__ import annotations

import importlib
from typing import Any


class Registry(dict):
    """Kind name -> OpKind, loading the module of a name on its first lookup."""

    def declare(self, package: str, modules: dict[str, tuple[str, ...]], prefixes: dict[str, str]) -> None:
        """`modules`: module -> the names it declares (kinds and aliases); `prefixes`: spelling -> module."""
        self._package = package
        self._order = {module: index for index, module in enumerate(modules)}
        self._where = {name: module for module, names in modules.items() for name in names}
        self._prefixes = prefixes
        self._complete = False

    def load(self, name: str) -> None:
        """Import the module that declares `name` (a kind, an alias or a spelling); every module for another."""
        module = self._where.get(name) or next((m for p, m in self._prefixes.items() if name.startswith(p)), None)
        if module is None:
            self.load_all()
        else:
            importlib.import_module(f"{self._package}.{module}")

    def load_all(self) -> None:
        """Import every kind's module, then order the kinds as the table orders their modules."""
        if self._complete:
            return
        for module in self._order:
            importlib.import_module(f"{self._package}.{module}")
        last = len(self._order)
        kinds = sorted(
            dict.items(self), key=lambda item: self._order.get(type(item[1]).__module__.rpartition(".")[2], last)
        )
        dict.clear(self)
        dict.update(self, kinds)
        self._complete = True

    def _known(self, name: Any) -> bool:
        if dict.__contains__(self, name) or not isinstance(name, str):
            return dict.__contains__(self, name)
        self.load(name)
        if not dict.__contains__(self, name):
            self.load_all()  # a kind declared where the table does not say
        return dict.__contains__(self, name)

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name) or self._known(name)

    def __missing__(self, name: str) -> Any:
        if self._known(name):
            return dict.__getitem__(self, name)
        raise KeyError(name)

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if self._known(name) else default

    def __iter__(self):
        self.load_all()
        return dict.__iter__(self)

    def __len__(self) -> int:
        self.load_all()
        return dict.__len__(self)

    def keys(self):
        self.load_all()
        return dict.keys(self)

    def values(self):
        self.load_all()
        return dict.values(self)

    def items(self):
        self.load_all()
        return dict.items(self)
