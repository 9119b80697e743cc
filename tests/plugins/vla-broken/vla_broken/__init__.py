"""Test fixture: entries that fail to import (see pyproject.toml)."""
