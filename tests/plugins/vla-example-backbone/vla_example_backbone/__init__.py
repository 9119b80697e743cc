"""An example third-party vla backbone plugin (kept light: nothing heavy is imported here)."""

__version__ = "0.1.0"
