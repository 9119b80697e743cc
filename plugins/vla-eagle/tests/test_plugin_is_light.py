"""Listing vla-eagle's components imports no torch (only configs naming them do)."""

from __future__ import annotations

from vla_core.testing import assert_plugin_is_light


def test_vla_eagle_is_light() -> None:
    assert_plugin_is_light("vla-eagle")


def test_listed_in_vlm_backbones() -> None:
    import vla_core

    rows = vla_core.list_components(kind="vlm_backbones", filter="Eagle*")
    assert [(row.name, row.package) for row in rows] == [("EagleBackbone", "vla-eagle")]
