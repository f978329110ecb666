"""cnndsl: convolutional networks written the way papers draw them.

    net = cnndsl.load("resnet50")
    print(net.params, net.macs)
    print(net.summary())
"""
from .api import Network, load, parse
from .errors import CnnDslError

__version__ = "0.1.0"
__all__ = ["CnnDslError", "Network", "load", "parse", "__version__"]
