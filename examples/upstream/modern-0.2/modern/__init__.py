"""modern 0.2: an example module of the pkgbulk example tree."""
__version__ = "0.2"
