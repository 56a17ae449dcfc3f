"""The package version (its own module, so that :mod:`qutils.utils` can read it without importing
the package that imports :mod:`qutils.utils`)."""
__version__ = "0.1.0"
