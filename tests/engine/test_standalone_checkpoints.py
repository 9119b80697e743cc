"""Checkpoints stand alone: a run whose backbones (and tokenizer) came only from local model
directories (`pretrained_name_or_path`) is fine-tuned 2 steps, the directories are deleted,
and a fresh process loads the checkpoint and gives the same actions (to 1e-5: the same fp32
computation, rebuilt from config.json instead of the directory).

Covered: a transformers VLM (SmolVLM / idefics3, the model type the issue was measured with)
fully fine-tuned and with LoRA (and its `vla export --merge-lora`), `vla predict` on it, a
SigLIP vision backbone + Qwen2 LLM backbone; a checkpoint written before architectures were
recorded (loads while its directory exists, a clear error once it is gone); and a config
that does not describe the saved weights (an error before anything is allocated).

Marked slow: the module's fixture trains three tiny models (Trainer start-up, processor fit,
2 steps each) and the reload runs in a fresh process (shared by the reload and `vla predict`
checks), importing torch, transformers and the plugins (about 12 s of CPU on this 2-core
machine); the sharded test adds a 2-process torchrun. Only the check of a spec without architecture is fast.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from engine_fixtures import lerobot_run_config, train

from vla_core.checksums import write_checksums
from vla_core.engine.export import export_checkpoint
from vla_core.engine.policy import Policy
from vla_core.errors import CheckpointError, ConfigError
from vla_core.models.build import build_component
from vla_core.models.pretrained import load_pretrained

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "vlm"))
import tiny_vlms

HEAD = {"type": "MLPActionHead", "input_dim": 32, "state_dim": 4, "action_dim": 3, "chunk_size": 4, "hidden_dim": 32}
TOLERANCE = 1e-5

# One fresh process (each costs ~10 s of imports here) for both checks: `vla predict` on the
# first checkpoint (the CLI's main, its stdout captured), then Policy.from_pretrained on each.
RELOAD = """
import contextlib, io, json, sys
from vla_core.cli import main
from vla_core.data.lerobot_dataset import LeRobotDataset
from vla_core.engine.policy import Policy
checkpoints = json.loads(sys.argv[2])
predict_stdout = io.StringIO()
with contextlib.redirect_stdout(predict_stdout):
    try:
        main(["predict", sys.argv[3], "--dataset", sys.argv[1], "--index", "5", "--json", "--precision", "fp32"])
        predict_code = 0
    except SystemExit as exc:
        predict_code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
observation = LeRobotDataset(sys.argv[1], chunk_size=4)[5]
out = {name: Policy.from_pretrained(path, precision="fp32").act(observation).tolist()
       for name, path in checkpoints.items()}
print(json.dumps({"policy_actions": out, "predict_code": predict_code, "predict_stdout": predict_stdout.getvalue()}))
"""


def _observation(root: Path) -> dict[str, Any]:
    from vla_core.data.lerobot_dataset import LeRobotDataset

    return LeRobotDataset(str(root), chunk_size=4)[5]


def _write_llm_and_vision_dirs(root: Path) -> tuple[Path, Path]:
    """A tiny Qwen2 (with a word-level tokenizer) and a tiny SigLIP vision tower, saved as downloaded."""
    import torch
    import transformers as tf

    torch.manual_seed(0)
    tokenizer = tiny_vlms.make_tokenizer("qwen2_5_vl")
    llm = tf.Qwen2Model(tf.Qwen2Config(vocab_size=len(tokenizer) + 4, hidden_size=32, intermediate_size=64,
                                       num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2))
    llm.save_pretrained(root / "qwen2")
    tokenizer.save_pretrained(root / "qwen2")
    vision = tf.SiglipVisionModel(tf.SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                                        num_attention_heads=2, image_size=16, patch_size=8))
    vision.save_pretrained(root / "siglip")
    return root / "qwen2", root / "siglip"


def _vlm_config(output_dir: Path, root: Path, smolvlm: Path, lora: bool) -> dict[str, Any]:
    backbone = {"type": "TransformersVLMBackbone", "pretrained_name_or_path": str(smolvlm), "select_layer": 1,
                "max_cameras": 1}
    settings = build_component("vlm_backbones", backbone).processor_settings()
    config = lerobot_run_config(output_dir, root, steps=2, save_every=2, lr=1e-2)
    config["model"] = {"type": "LlavaVLA", "vlm_backbone": backbone, "vla_head": HEAD,
                       "processor": {"type": "VLAProcessor", "max_lang_len": 6, "max_state_dim": 4, "max_action_dim": 3,
                                     "chunk_size": 4, "tokenizer": str(smolvlm), **settings}}
    if lora:
        config["train"]["lora"] = {"r": 4, "alpha": 8, "target_modules": "all-linear"}
    return config


def _llm_config(output_dir: Path, root: Path, llm: Path, vision: Path) -> dict[str, Any]:
    config = lerobot_run_config(output_dir, root, steps=2, save_every=2, lr=1e-2)
    config["model"] = {
        "type": "LlavaVLA",
        "vision_backbone": {"type": "TransformersVisionBackbone", "pretrained_name_or_path": str(vision)},
        "projector": {"type": "MLPProjector", "in_dim": 32, "out_dim": 32},
        "llm_backbone": {"type": "TransformersLLMBackbone", "pretrained_name_or_path": str(llm)},
        "vla_head": HEAD,
        "processor": {"type": "VLAProcessor", "image_size": 16, "max_lang_len": 6, "max_state_dim": 4,
                      "max_action_dim": 3, "chunk_size": 4, "tokenizer": str(llm)},
    }
    return config


@pytest.fixture(scope="module")
def standalone_runs(lerobot_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Three 2-step runs from model directories that are deleted afterwards -> checkpoints, the
    actions of the trained models on one observation, and where the directories were."""
    tmp = tmp_path_factory.mktemp("standalone")
    models = tmp / "models"
    smolvlm = tiny_vlms.build("smolvlm", models / "smolvlm")
    llm, vision = _write_llm_and_vision_dirs(models)
    observation = _observation(lerobot_root)
    configs = {
        "smolvlm": _vlm_config(tmp / "smolvlm", lerobot_root, smolvlm, lora=False),
        "smolvlm-lora": _vlm_config(tmp / "smolvlm-lora", lerobot_root, smolvlm, lora=True),
        "siglip-qwen2": _llm_config(tmp / "siglip-qwen2", lerobot_root, llm, vision),
    }
    checkpoints, expected = {}, {}
    for name, config in configs.items():
        trainer, result = train(config)
        checkpoints[name] = result.last_checkpoint
        expected[name] = Policy(trainer.vla, trainer.processor, precision="fp32").act(observation)
    shutil.rmtree(models)  # the checkpoints must stand alone
    return {"checkpoints": checkpoints, "expected": expected, "models": models, "tmp": tmp,
            "smolvlm": smolvlm, "llm": llm}


@pytest.fixture(scope="module")
def fresh_process(standalone_runs: dict[str, Any], lerobot_root: Path) -> dict[str, Any]:
    """The checkpoints (and the merged LoRA export) loaded in one fresh process, which also ran
    `vla predict` on the full fine-tune -> what RELOAD printed, and the checkpoints it loaded."""
    checkpoints = dict(standalone_runs["checkpoints"])
    exported = export_checkpoint(checkpoints["smolvlm-lora"], standalone_runs["tmp"] / "exported", merge_lora=True)
    checkpoints["smolvlm-lora-exported"] = exported
    result = subprocess.run([sys.executable, "-c", RELOAD, str(lerobot_root),
                             json.dumps({k: str(v) for k, v in checkpoints.items()}), str(checkpoints["smolvlm"])],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "checkpoints": checkpoints, "stderr": result.stderr}


@pytest.mark.slow
def test_a_fine_tuned_checkpoint_reloads_in_a_fresh_process_without_its_model_directories(
    standalone_runs: dict[str, Any], fresh_process: dict[str, Any]
) -> None:
    checkpoints, predicted = fresh_process["checkpoints"], fresh_process["policy_actions"]
    expected = {**standalone_runs["expected"], "smolvlm-lora-exported": standalone_runs["expected"]["smolvlm-lora"]}
    assert predicted.keys() == expected.keys()
    for name, actions in expected.items():
        np.testing.assert_allclose(np.asarray(predicted[name]), actions, atol=TOLERANCE, rtol=0, err_msg=name)

    config = json.loads((checkpoints["smolvlm"] / "config.json").read_text())
    backbone = config["model"]["vlm_backbone"]
    assert backbone["pretrained_name_or_path"] is None and backbone["config"]["model_type"] == "idefics3"
    assert backbone["config"]["text_config"]["hidden_size"] == 32
    # what the run was given stays on record, and is what a resume compares against
    assert config["model_as_configured"]["vlm_backbone"]["pretrained_name_or_path"] == str(standalone_runs["smolvlm"])
    llm = json.loads((checkpoints["siglip-qwen2"] / "config.json").read_text())["model"]["llm_backbone"]
    assert llm["model_type"] == "qwen2" and llm["config"]["hidden_size"] == 32
    # the tokenizer that came from the deleted directory is saved with the checkpoint
    assert (checkpoints["siglip-qwen2"] / "processor" / "tokenizer" / "tokenizer.json").is_file()


@pytest.mark.slow
def test_vla_predict_serves_the_checkpoint_without_its_model_directory(
    standalone_runs: dict[str, Any], fresh_process: dict[str, Any]
) -> None:
    out = fresh_process["predict_stdout"]
    assert fresh_process["predict_code"] == 0, out[-2000:] + fresh_process["stderr"][-3000:]
    actions = np.asarray(json.loads(out[out.index("{"):])["actions"])
    np.testing.assert_allclose(actions, standalone_runs["expected"]["smolvlm"], atol=TOLERANCE, rtol=0)


def _as_written_before(checkpoint: Path, target: Path, part: str, path: Path) -> Path:
    """A copy of `checkpoint` whose config.json names `part` only by its directory, as
    checkpoints written before architectures were recorded did."""
    shutil.copytree(checkpoint, target)
    config = json.loads((target / "config.json").read_text())
    spec = config["model"][part]
    config["model"][part] = {"type": spec["type"], "pretrained_name_or_path": str(path),
                             **{k: v for k, v in spec.items() if k not in ("type", "model_type", "config",
                                                                            "pretrained_name_or_path")}}
    config.pop("model_as_configured")
    (target / "config.json").write_text(json.dumps(config))
    write_checksums(target)
    return target


@pytest.mark.slow
def test_an_older_checkpoint_loads_while_its_directory_exists_and_says_what_to_do_once_it_is_gone(
    standalone_runs: dict[str, Any], lerobot_root: Path, tmp_path: Path
) -> None:
    llm = tmp_path / "models" / "qwen2"
    _write_llm_and_vision_dirs(tmp_path / "models")  # the same seed: the same directory again
    old = _as_written_before(standalone_runs["checkpoints"]["siglip-qwen2"], tmp_path / "old", "llm_backbone", llm)
    with pytest.warns(UserWarning, match="does not record its architecture"):
        policy = Policy.from_pretrained(old, precision="fp32")
    np.testing.assert_allclose(policy.act(_observation(lerobot_root)), standalone_runs["expected"]["siglip-qwen2"],
                               atol=TOLERANCE, rtol=0)
    # re-saving it (vla export) records the architecture: it then stands alone
    with pytest.warns(UserWarning, match="does not record its architecture"):
        exported = export_checkpoint(old, tmp_path / "upgraded")
    shutil.rmtree(tmp_path / "models")
    with pytest.raises(CheckpointError) as error:
        load_pretrained(old)
    message = str(error.value)
    assert "model.llm_backbone (TransformersLLMBackbone)" in message and str(llm) in message
    assert "no longer exists" in message and "vla export" in message
    upgraded = Policy.from_pretrained(exported, precision="fp32")
    np.testing.assert_allclose(upgraded.act(_observation(lerobot_root)), standalone_runs["expected"]["siglip-qwen2"],
                               atol=TOLERANCE, rtol=0)

    # TransformersVLMBackbone recorded its architecture before, but kept naming the directory
    vlm = shutil.copytree(standalone_runs["checkpoints"]["smolvlm"], tmp_path / "old-vlm")
    config = json.loads((vlm / "config.json").read_text())
    config["model"]["vlm_backbone"]["pretrained_name_or_path"] = str(standalone_runs["smolvlm"])  # deleted
    (vlm / "config.json").write_text(json.dumps(config))
    write_checksums(vlm)
    np.testing.assert_allclose(Policy.from_pretrained(vlm, precision="fp32").act(_observation(lerobot_root)),
                               standalone_runs["expected"]["smolvlm"], atol=TOLERANCE, rtol=0)


def _with_llm_config(checkpoint: Path, target: Path, llm_config: dict[str, Any]) -> Path:
    shutil.copytree(checkpoint, target)
    config = json.loads((target / "config.json").read_text())
    config["model"]["llm_backbone"]["config"] = llm_config
    (target / "config.json").write_text(json.dumps(config))
    write_checksums(target)
    return target


@pytest.mark.slow
def test_a_config_that_does_not_describe_the_weights_is_refused_before_anything_is_allocated(
    standalone_runs: dict[str, Any], tmp_path: Path
) -> None:
    """A spec that is not the saved architecture (here a wider MLP and a 151936-token table, or
    transformers' full-size default Qwen2: 2.5 GB for its embeddings alone) is built on the meta
    device first: an error naming what differs, before any memory is allocated."""
    checkpoint = standalone_runs["checkpoints"]["siglip-qwen2"]
    recorded = json.loads((checkpoint / "config.json").read_text())["model"]["llm_backbone"]["config"]
    wider = _with_llm_config(checkpoint, tmp_path / "wider", {**recorded, "intermediate_size": 8192,
                                                              "vocab_size": 151936})
    with pytest.raises(CheckpointError, match=r"(?s)does not describe the architecture of the saved weights.*"
                                              r"llm_backbone\.model\.embed_tokens\.weight: config \(151936, 32\), "
                                              r"weights \(\d+, 32\)"):
        load_pretrained(wider)
    full_size = _with_llm_config(checkpoint, tmp_path / "default", {})  # transformers' default Qwen2, on purpose
    with pytest.raises(CheckpointError, match=r"config.json's model cannot be built: .*4096"):
        load_pretrained(full_size)


def test_a_transformers_backbone_without_architecture_or_directory_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"config: is missing.*full-size"):
        build_component("llm_backbones", {"type": "TransformersLLMBackbone", "model_type": "qwen2"})
    with pytest.raises(ConfigError, match=r"config: is missing"):
        build_component("vision_backbones", {"type": "TransformersVisionBackbone"})


@pytest.mark.slow
def test_a_sharded_checkpoint_stands_alone_too(lerobot_root: Path, tmp_path: Path) -> None:
    """A 2-process run (DCP shards, the parts built on meta from rank 0's resolved spec) from
    model directories: once they are deleted, the checkpoint and its export give the actions of
    the trained weights in the model the run was configured with."""
    from engine_fixtures import run_script, script_command, write_config

    from vla_core.models.build import build_vla
    from vla_core.models.pretrained import load_processor
    from vla_core.models.sharded_weights import is_sharded
    from vla_core.models.weights import load_into, load_state_dict

    llm, vision = _write_llm_and_vision_dirs(tmp_path / "models")
    config = _llm_config(tmp_path / "run", lerobot_root, llm, vision)
    run_script(script_command(write_config(tmp_path / "run.json", config), nproc=2))
    checkpoint = tmp_path / "run" / "checkpoints" / "step-2"
    assert is_sharded(checkpoint)
    reference = build_vla(config["model"])  # as configured, from the directories
    load_into(reference, load_state_dict(checkpoint), strict=True)
    observation = _observation(lerobot_root)
    expected = Policy(reference, load_processor(checkpoint, config["model"]["processor"]), precision="fp32")
    expected_actions = expected.act(observation)
    shutil.rmtree(tmp_path / "models")
    np.testing.assert_allclose(Policy.from_pretrained(checkpoint, precision="fp32").act(observation),
                               expected_actions, atol=TOLERANCE, rtol=0)
    exported = export_checkpoint(checkpoint, tmp_path / "exported")
    np.testing.assert_allclose(Policy.from_pretrained(exported, precision="fp32").act(observation),
                               expected_actions, atol=TOLERANCE, rtol=0)
