"""cnndsl: convolutional networks written the way papers draw them.

net = cnndsl.load("resnet50")
print(net.params, net.macs)
print(net.summary())
"""

from .api import Network, load, parse
from .core.errors import CnnDslError
from .core.version import __version__
from .importers import import_file

__all__ = ["CnnDslError", "Network", "import_file", "load", "parse", "__version__"]
