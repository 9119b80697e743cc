"""`python -m vla_core.cli ...` (used by torchrun re-launches)."""

from vla_core.cli import main

main()
