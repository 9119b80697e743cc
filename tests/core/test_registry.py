"""Entry-point registry: listing without import, isolation, duplicates, suggestions, env switches."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vla_core import registry
from vla_core.errors import ComponentNotFoundError, DuplicateComponentError, PluginImportError

ROW_KEYS = {"name", "kind", "package", "version", "status", "error"}


def test_listing_reads_metadata_without_importing_torch(run_vla):
    code = textwrap.dedent(
        """
        import json, sys
        from vla_core.cli import main
        sys.argv = ["vla", "list-components", "--json"]
        try:
            main()
        except SystemExit:
            pass
        print("TORCH_IMPORTED=" + json.dumps("torch" in sys.modules))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "TORCH_IMPORTED=false" in result.stdout
    rows = json.loads(result.stdout.split("TORCH_IMPORTED=")[0])
    assert rows and all(set(row) == ROW_KEYS for row in rows)
    names = {(row["name"], row["package"]) for row in rows}
    assert ("MLPActionHead", "vla-core") in names
    assert ("AttentionPoolingHead", "vla-example-head") in names


def test_import_vla_core_is_light():
    code = "import sys, vla_core; vla_core.list_components(); print('torch' in sys.modules, 'pydantic' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["False", "False"], result.stderr


def test_filter_and_kind_like_timm():
    rows = registry.list_components(kind="heads", filter="*pooling*")
    assert [r.name for r in rows] == ["AttentionPoolingHead"]
    assert all(r.kind == "heads" for r in registry.list_components(kind="heads"))


def test_broken_entries_are_isolated_rows():
    rows = {r.name: r for r in registry.list_components(kind="heads", check=True)}
    assert rows["MLPActionHead"].status == "ok"
    assert rows["AttentionPoolingHead"].status == "ok"
    broken = rows["BrokenHead"]
    assert broken.status == "broken" and broken.package == "vla-broken"
    assert "RuntimeError" in broken.error and "\n" not in broken.error
    assert "does not exist" in rows["GhostHead"].error  # the module itself is missing
    assert "pip install vla_dependency_that_is_not_installed" in rows["NeedsMissingDependencyHead"].error


def test_using_a_broken_plugin_names_it():
    with pytest.raises(PluginImportError, match=r"vla\.heads entry 'BrokenHead' from package 'vla-broken'"):
        registry.load("heads", "BrokenHead")


def test_strict_mode_reraises_the_original(monkeypatch):
    monkeypatch.setenv("VLA_STRICT_PLUGINS", "1")
    with pytest.raises(RuntimeError, match="on purpose"):
        registry.load("heads", "BrokenHead")


def test_unknown_name_suggests_and_lists_installed():
    with pytest.raises(ComponentNotFoundError) as info:
        registry.load("heads", "MLPActionHed")
    message = str(info.value)
    assert "Did you mean 'MLPActionHead'" in message
    assert "Installed heads:" in message and "AttentionPoolingHead (vla-example-head)" in message


def test_unknown_name_of_a_known_plugin_says_what_to_install(monkeypatch):
    monkeypatch.setitem(registry.KNOWN_PROVIDERS, "FancyHead", "vla-fancy-heads")
    with pytest.raises(ComponentNotFoundError) as info:
        registry.load("heads", "FancyHead")
    message = str(info.value)
    assert "provided by the package 'vla-fancy-heads': pip install vla-fancy-heads" in message


def test_wrong_kind_is_explained():
    with pytest.raises(ComponentNotFoundError) as info:
        registry.load("heads", "LlavaVLA")
    message = str(info.value)
    assert "registered as a vlas component" in message


def test_disable_plugins(monkeypatch):
    monkeypatch.setenv("VLA_DISABLE_PLUGINS", "vla-example-head")
    rows = {r.name: r for r in registry.list_components(kind="heads")}
    assert rows["AttentionPoolingHead"].status == "disabled"
    with pytest.raises(ComponentNotFoundError, match="disabled by VLA_DISABLE_PLUGINS"):
        registry.load("heads", "AttentionPoolingHead")


def test_in_process_registration(register_component):
    class LocalHead:
        pass

    register_component("heads", "LocalHead", LocalHead)
    assert registry.load("heads", "LocalHead") is LocalHead


def _fake_distribution(site: Path, dist: str, group: str, name: str, target: str) -> None:
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{name} = {target}\n")


def test_same_name_in_two_distributions_is_an_error_naming_both(tmp_path):
    site = tmp_path / "site"
    _fake_distribution(site, "vla-twin-a", "vla.heads", "TwinHead", "twin_a:TwinHead")
    _fake_distribution(site, "vla-twin-b", "vla.heads", "TwinHead", "twin_b:TwinHead")
    (site / "twin_a.py").write_text("class TwinHead:\n    origin = 'a'\n")
    (site / "twin_b.py").write_text("class TwinHead:\n    origin = 'b'\n")
    code = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, sys.argv[1])
        from vla_core import registry
        rows = [r for r in registry.list_components(kind="heads") if r.name == "TwinHead"]
        print(sorted(r.status for r in rows))
        try:
            registry.load("heads", "TwinHead")
        except Exception as exc:
            print(type(exc).__name__, exc)
        print(registry.load("heads", "vla-twin-b:TwinHead").origin)
        """
    )
    result = subprocess.run([sys.executable, "-c", code, str(site)], capture_output=True, text=True, timeout=60)
    lines = result.stdout.splitlines()
    assert lines[0] == "['duplicate', 'duplicate']", result.stderr
    assert lines[1].startswith(DuplicateComponentError.__name__)
    assert "vla-twin-a" in lines[1] and "vla-twin-b" in lines[1] and "vla-twin-a:TwinHead" in lines[1]
    assert lines[2] == "b"


def test_known_providers_name_every_component_of_this_repos_plugins():
    # The "pip install ..." hint of an unknown name relies on this table.
    ours = {"vla-heads-flow", "vla-paligemma", "vla-eagle", "vla-openvla", "vla-metaworld"}
    rows = [r for r in registry.list_components() if r.package in ours]
    assert {r.package for r in rows} == ours
    wrong = {r.name: r.package for r in rows if registry.KNOWN_PROVIDERS.get(r.name) != r.package}
    assert not wrong, f"add these to registry.KNOWN_PROVIDERS: {wrong}"
