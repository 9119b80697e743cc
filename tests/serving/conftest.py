"""Fixtures of the serving tests (helpers in serving_fixtures.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serving_fixtures import make_checkpoint, make_server

from vla_core.engine.policy import Policy
from vla_core.serving.server import PolicyServer


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("serving") / "ckpt")


@pytest.fixture(scope="session")
def policy(checkpoint: Path) -> Policy:
    return Policy.from_pretrained(checkpoint)


@pytest.fixture
def server(policy: Policy) -> Iterator[PolicyServer]:
    """An in-process server on a free loopback port, stopped after the test."""
    server = make_server(policy)
    yield server
    server.stop()
