"""Embodiment specs (YAML, shorthands, errors) and the sample schema (collate, checks)."""

from __future__ import annotations

import pytest
import torch

from vla_core.data.embodiment import EmbodimentSpec
from vla_core.data.schema import BATCH_KEYS, check_batch, collate
from vla_core.errors import DataError
from vla_core.testing import make_tiny_batch

FEATURES = {
    "observation.images.top": {"dtype": "video", "shape": [64, 64, 3]},
    "observation.images.wrist": {"dtype": "image", "shape": [48, 48, 3]},
    "observation.state": {"dtype": "float32", "shape": [8]},
    "observation.gripper": {"dtype": "float32", "shape": [1]},
    "action": {"dtype": "float32", "shape": [7]},
    "timestamp": {"dtype": "float32", "shape": [1]},
}

YAML = """
name: so100
embodiment_id: 2
cameras: [observation.images.wrist, observation.images.top]
state:
  - observation.state
  - {key: observation.gripper, norm: min_max}
action:
  - {key: action, dim: 7, norm: q01_q99}
max_state_dim: 16
max_action_dim: 8
"""


def test_yaml_file_resolves_against_the_dataset(tmp_path):
    path = tmp_path / "so100.yaml"
    path.write_text(YAML)
    spec = EmbodimentSpec.load(str(path)).resolve(FEATURES)
    assert spec.cameras == ["observation.images.wrist", "observation.images.top"]  # the spec's order
    assert spec.state_keys == ["observation.state", "observation.gripper"] and spec.state_dim == 9
    assert spec.action_dim == 7 and spec.embodiment_id == 2
    assert spec.feature_roles() == {
        "observation.state": ("state", 8, "mean_std"),
        "observation.gripper": ("state", 1, "min_max"),
        "action": ("action", 7, "q01_q99"),
    }
    assert spec.layout() == {"state": [("observation.state", 8), ("observation.gripper", 1)], "action": [("action", 7)]}


def test_defaults_and_mapping_shorthand():
    spec = EmbodimentSpec.load(None).resolve(FEATURES)
    assert spec.cameras == ["observation.images.top", "observation.images.wrist"]  # all, in info.json order
    assert spec.state_keys == ["observation.state"] and spec.action_keys == ["action"]
    spec = EmbodimentSpec.load({"state": {"observation.state": {"norm": "identity"}}, "action": "action"})
    assert spec.state[0].norm == "identity" and spec.action_keys == ["action"]


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(DataError, match=r"embodiment file '.*missing\.yaml' does not exist"):
        EmbodimentSpec.load(str(tmp_path / "missing.yaml"))
    with pytest.raises(DataError, match=r"state\.0\.norm: Input should be 'mean_std'"):
        EmbodimentSpec.load({"state": [{"key": "observation.state", "norm": "zscore"}]})
    with pytest.raises(DataError, match="cameraz: Extra inputs are not permitted"):
        EmbodimentSpec.load({"cameraz": []})
    bad = tmp_path / "bad.yaml"
    bad.write_text("state: [unclosed")
    with pytest.raises(DataError, match="could not be parsed"):
        EmbodimentSpec.load(str(bad))
    with pytest.raises(DataError, match=r"configured with dim 6 but has dim 7"):
        EmbodimentSpec.load({"action": [{"key": "action", "dim": 6}]}).resolve(FEATURES)
    with pytest.raises(DataError, match="must be 1-D numeric vectors"):
        EmbodimentSpec.load({"state": ["observation.images.top"]}).resolve(FEATURES)
    with pytest.raises(DataError, match="is a float32 feature of the dataset, not an image"):
        EmbodimentSpec.load({"cameras": ["observation.state"]}).resolve(FEATURES)
    with pytest.raises(DataError, match=r"the state \(observation\.state \+ observation\.gripper\) has 9 dims"):
        EmbodimentSpec.load({"state": ["observation.state", "observation.gripper"], "max_state_dim": 8}).resolve(
            FEATURES
        )
    with pytest.raises(DataError, match="has no 'action' feature"):
        EmbodimentSpec.load(None).resolve({k: v for k, v in FEATURES.items() if k != "action"})


def test_collate_stacks_processed_samples():
    batch = make_tiny_batch(batch_size=3, num_cameras=2)
    samples = [{k: v[i] for k, v in batch.items()} for i in range(3)]
    samples[0]["task"] = samples[1]["task"] = samples[2]["task"] = "pick"
    collated = collate(samples)
    for key in BATCH_KEYS:
        assert torch.equal(collated[key], batch[key])
    assert collated["task"] == ["pick"] * 3
    check_batch(collated)


def test_collate_and_check_batch_errors():
    batch = make_tiny_batch(batch_size=2)
    samples = [{k: v[i] for k, v in batch.items()} for i in range(2)]
    with pytest.raises(DataError, match="samples with and without actions"):
        collate([samples[0], {k: v for k, v in samples[1].items() if k not in ("actions", "action_masks")}])
    samples[1]["lang_tokens"] = torch.zeros(9, dtype=torch.long)
    with pytest.raises(DataError, match="'lang_tokens' has different shapes"):
        collate(samples)
    bad = dict(batch, states=batch["states"].double())
    del bad["img_masks"]
    with pytest.raises(DataError) as info:
        check_batch(bad)
    assert "'img_masks' is missing" in str(info.value) and "'states' has dtype torch.float64" in str(info.value)
    check_batch({k: v for k, v in batch.items() if k not in ("actions", "action_masks")}, require_actions=False)


def test_data_package_and_embodiment_specs_do_not_import_torch():
    import subprocess
    import sys

    code = "import sys, vla_core.data, vla_core.data.embodiment; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
