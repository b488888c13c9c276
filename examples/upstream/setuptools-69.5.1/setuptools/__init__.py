"""setuptools 69.5.1: an example module of the pkgbulk example tree."""
__version__ = "69.5.1"
