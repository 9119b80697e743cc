"""Task names, instructions, experts and the GL backend choice (no rendering here)."""

from __future__ import annotations

import pytest
from vla_metaworld.gl import choose_backend
from vla_metaworld.tasks import MT10, TASKS, canonical_task, expand_tasks, instruction

from vla_core.errors import EnvError
from vla_core.testing import assert_plugin_is_light


def test_every_metaworld_v3_task_has_an_instruction_and_an_expert() -> None:
    import metaworld.env_dict
    import metaworld.policies

    assert set(TASKS) == set(metaworld.env_dict.ALL_V3_ENVIRONMENTS)
    assert list(MT10) == list(metaworld.env_dict.MT10_V3)
    for task, (sentence, expert) in TASKS.items():
        assert sentence and sentence == sentence.lower(), task
        assert hasattr(metaworld.policies, expert), f"{task}: no metaworld.policies.{expert}"
    assert len({sentence for sentence, _ in TASKS.values()}) == len(TASKS), "instructions must tell tasks apart"


def test_task_names_with_or_without_version_and_groups() -> None:
    assert canonical_task("drawer-close") == canonical_task("drawer-close-v3") == "drawer-close-v3"
    assert instruction("drawer-close") == "close the drawer"
    assert expand_tasks(["demo", "drawer-close"]) == ["drawer-close-v3", "button-press-topdown-v3", "window-open-v3"]
    assert expand_tasks(["mt10"]) == list(MT10)


def test_unknown_task_names_the_closest_and_lists_all() -> None:
    with pytest.raises(EnvError) as info:
        canonical_task("drawer-clse")
    message = str(info.value)
    assert "Unknown Meta-World task 'drawer-clse'" in message
    assert "Did you mean 'drawer-close'" in message
    assert "window-open" in message and "assembly" in message  # the full list


def _finder(present: set[str]):
    return lambda name: f"lib{name}.so" if name in present else None


def test_gl_backend_prefers_egl_then_osmesa() -> None:
    assert choose_backend("", _finder({"EGL", "OSMesa"})) == "egl"
    assert choose_backend("", _finder({"OSMesa"})) == "osmesa"
    assert choose_backend("osmesa", _finder({"EGL", "OSMesa"})) == "osmesa"
    assert choose_backend("glfw", _finder(set())) == "glfw"  # an explicit other backend is the user's call


def test_gl_libraries_missing_names_the_packages() -> None:
    with pytest.raises(EnvError) as info:
        choose_backend("", _finder(set()))
    assert "apt-get install -y libegl1 libgl1-mesa-dri" in str(info.value)
    assert "libosmesa6" in str(info.value)
    with pytest.raises(EnvError, match=r"libEGL are not installed.*libegl1 libgl1-mesa-dri"):
        choose_backend("egl", _finder({"OSMesa"}))
    with pytest.raises(EnvError, match=r"libOSMesa are not installed.*libosmesa6"):
        choose_backend("osmesa", _finder({"EGL"}))


def test_plugin_is_light() -> None:
    assert_plugin_is_light("vla-metaworld")
