"""markup 2.4: an example module of the pkgbulk example tree."""
__version__ = "2.4"
