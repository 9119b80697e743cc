"""An example third-party vla plugin (kept light: nothing heavy is imported here)."""

__version__ = "0.1.0"
