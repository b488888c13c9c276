"""fetch 1.0.3: an example module of the pkgbulk example tree."""
__version__ = "1.0.3"
