"""The VLM backbone tests build their tiny model directories with `tiny_vlms` (next to this file)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
