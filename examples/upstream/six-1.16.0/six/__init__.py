"""six 1.16.0: an example module of the pkgbulk example tree."""
__version__ = "1.16.0"
