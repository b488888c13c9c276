"""legacy 5.1: an example module of the pkgbulk example tree."""
__version__ = "5.1"
