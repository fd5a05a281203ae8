"""The package version, in one place: everything below the package face reads it here."""

__version__ = "0.1.0"
