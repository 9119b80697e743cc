"""Parameter descriptions from Google-style docstrings (`Args:` sections)."""

from __future__ import annotations

import inspect
import re

_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Params)\s*:\s*$")
_OTHER_SECTION = re.compile(r"^\s*[A-Z][A-Za-z ]+:\s*$")
_PARAM = re.compile(r"^(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")


def parameter_docs(*objects: object) -> dict[str, str]:
    """Map parameter name -> one-paragraph description, from the `Args:` sections of the
    docstrings of `objects` (typically a class and its `__init__`); earlier objects win."""
    docs: dict[str, str] = {}
    for obj in reversed(objects):
        docs.update(_parse(inspect.getdoc(obj) or ""))
    return docs


def _parse(doc: str) -> dict[str, str]:
    result: dict[str, str] = {}
    lines = doc.splitlines()
    in_args = False
    base_indent = None
    current: str | None = None
    for line in lines:
        if _SECTION.match(line):
            in_args, base_indent, current = True, None, None
            continue
        if not in_args:
            continue
        if not line.strip():
            current = None if current is None else current
            continue
        indent = len(line) - len(line.lstrip())
        if base_indent is None:
            base_indent = indent
        if indent < base_indent or (indent == base_indent and _OTHER_SECTION.match(line)):
            in_args = False
            continue
        match = _PARAM.match(line.strip())
        if indent == base_indent and match:
            current = match.group(1).lstrip("*")
            result[current] = match.group(3).strip()
        elif current is not None:
            result[current] = f"{result[current]} {line.strip()}".strip()
    return result
