"""`Policy.from_pretrained` on tiny released OpenVLA / OpenVLA-OFT directories (weights, statistics,
preprocessor_config.json and a LLaMA-style tokenizer trained here): raw observation in, robot units
out, equal to the reference pipeline computed here step by step.

References: openvla `experiments/robot/openvla_utils.py` (`get_vla_action`),
`prismatic/extern/hf/processing_prismatic.py` (`PrismaticProcessor`, `PrismaticImageProcessor`),
`prismatic/extern/hf/modeling_prismatic.py` (`predict_action`); openvla-oft's
`experiments/robot/openvla_utils.py` (`get_vla_action`, `prepare_images_for_vla`,
`resize_image_for_policy`, `center_crop_image`, `normalize_proprio`) and `modeling_prismatic.py`
(`predict_action`, `_unnormalize_actions`), `prismatic/models/action_heads.py`.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from vla_openvla.processor import OpenVLAProcessor
from vla_openvla.tf_image_ops import center_crop_and_resize, resize_like_rlds

from vla_core.checksums import checkpoint_directory
from vla_core.engine.policy import Policy
from vla_core.errors import DataError
from vla_core.serving.checks import ObservationSpec

A = 7  # xyz, rpy, gripper
BRIDGE = {"action": {"q01": [-0.03, -0.04, -0.03, -0.1, -0.1, -0.2, 0.0], "q99": [0.03, 0.04, 0.04, 0.1, 0.1, 0.2, 1.0],
                     "min": [-0.1] * 6 + [0.0], "max": [0.1] * 6 + [1.0], "mask": [True] * 6 + [False]},
          "proprio": {"q01": [0.0] * 7, "q99": [0.0] * 7}}
FRACTAL = {"action": {"q01": [-0.2] * 7, "q99": [0.2] * 7, "mask": [True] * 7}}
LIBERO = {
    "action": {"q01": [-0.7, -0.6, -0.9, -0.1, -0.2, -0.3, -1.0], "q99": [0.9, 0.8, 0.9, 0.15, 0.2, 0.35, 1.0],
               "min": [-1.0] * 7, "max": [1.0] * 7, "mask": [True] * 6 + [False]},
    "proprio": {"q01": [-0.3, -0.2, 0.0, 2.9, -0.6, -0.4, 0.0, -0.04], "q99": [0.2, 0.3, 1.2, 3.3, 0.4, 0.5, 0.04, 0.0],
                "min": [-1.0] * 8, "max": [2.0] * 8, "mask": [True] * 7 + [False]},
}


def reference_pixel_values(directory, image) -> torch.Tensor:
    """processing_prismatic.PrismaticImageProcessor.apply_transform, with torchvision as the reference calls it."""
    import torchvision.transforms.functional as TVF
    from torchvision.transforms import InterpolationMode

    config = json.loads((directory / "preprocessor_config.json").read_text())
    views = []
    for resize, crop, norm in zip(config["tvf_resize_params"], config["tvf_crop_params"],
                                  config["tvf_normalize_params"], strict=True):
        # TVF.resize(img, **tvf_resize_params[idx]): PIL bicubic (interpolation 3), antialias
        view = TVF.resize(image, size=resize["size"], interpolation=InterpolationMode.BICUBIC, max_size=None,
                          antialias=True)
        # TVF.center_crop(img_idx, **tvf_crop_params[idx])
        view = TVF.center_crop(view, crop["output_size"])
        # TVF.to_tensor + TVF.normalize(**tvf_normalize_params[idx])
        views.append(TVF.normalize(TVF.to_tensor(view), mean=norm["mean"], std=norm["std"]))
    return torch.vstack(views)  # [Contract] fused backbones take the views stacked on channels


def released_directory(ref, path, seed: int, norm_stats: dict) -> tuple:
    directory = path / "released"
    state = ref.released_state(seed=seed)
    ref.write_released_openvla(directory, state, norm_stats)
    ref.write_preprocessor_config(directory)
    ref.write_llama_tokenizer(directory)
    return directory, {k: v.float() for k, v in state.items()}


def test_openvla_policy_equals_the_reference_pipeline(ref, tmp_path):
    from PIL import Image
    from transformers import AutoTokenizer

    directory, weights = released_directory(ref, tmp_path, 31, {"bridge_orig": BRIDGE, "fractal20220817_data": FRACTAL})
    policy = Policy.from_pretrained(directory, precision="fp32")
    assert isinstance(policy.processor, OpenVLAProcessor) and policy.processor.variant == "openvla"
    frame = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)  # camera resolution
    task = "Pick up the RED block"
    observation = {"images": {"full_image": frame}, "task": task, "state": np.zeros(7)}
    with pytest.raises(DataError, match=r"2 datasets: \['bridge_orig', 'fractal20220817_data'\]"):
        policy.act(observation)  # several statistics and no unnorm_key
    policy.processor.unnorm_key = "bridge_orig"
    got = policy.act(observation)  # (1, A)

    llm = ref.reference_llama(weights)
    llm.generation_config.eos_token_id = None
    # get_vla_action: image = Image.fromarray(obs["full_image"]).convert("RGB") (center_crop=False)
    image = Image.fromarray(frame).convert("RGB")
    # get_vla_action: prompt = f"In: What action should the robot take to {task_label.lower()}?\nOut:"
    prompt = f"In: What action should the robot take to {task.lower()}?\nOut:"
    # PrismaticProcessor.__call__: tokenizer(prompt) (AutoTokenizer of the checkpoint, <BOS> first)
    tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    input_ids = tokenizer(prompt, return_tensors="pt").input_ids
    # PrismaticProcessor.__call__ -> PrismaticImageProcessor: pixel_values (1, 6, H, W)
    pixel_values = reference_pixel_values(directory, image)[None]
    # predict_action: append the empty token 29871 ("\u2581"; this tokenizer's id for it) when not last
    empty = tokenizer.convert_tokens_to_ids("\u2581")
    if not torch.all(input_ids[:, -1] == empty):
        input_ids = torch.cat((input_ids, torch.tensor([[empty]])), dim=1)
    # PrismaticForConditionalGeneration.forward: fused featurizer patches -> projector, after <BOS>
    embeds = ref.reference_multimodal_embeds(weights, llm, pixel_values, input_ids)
    # predict_action: generate(max_new_tokens=get_action_dim(unnorm_key), do_sample=False)
    with torch.no_grad():
        generated = llm.generate(inputs_embeds=embeds, attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long),
                                 max_new_tokens=A, do_sample=False, pad_token_id=0)
    token_ids = generated[0, -A:].numpy()
    # predict_action: vocab_size - ids, clip(- 1, 0, 254), bin centres of linspace(-1, 1, n_action_bins)
    bins = np.linspace(-1, 1, 256)
    centers = (bins[:-1] + bins[1:]) / 2.0
    normalized = centers[np.clip(ref.TOKENIZER_VOCAB - token_ids - 1, a_min=0, a_max=254)]
    # predict_action: where(mask, 0.5 * (a + 1) * (q99 - q01) + q01, a) with norm_stats["bridge_orig"]["action"]
    stats = BRIDGE["action"]
    expected = np.where(stats["mask"], 0.5 * (normalized + 1) * (np.array(stats["q99"]) - np.array(stats["q01"]))
                        + np.array(stats["q01"]), normalized)

    assert got.shape == (1, A)
    np.testing.assert_allclose(got[0], expected, rtol=0, atol=1e-7)
    assert got[0, -1] == pytest.approx(normalized[-1], abs=1e-7)  # the gripper (mask False) stays as predicted


def test_oft_policy_equals_the_reference_pipeline(ref, tmp_path):
    from PIL import Image
    from transformers import AutoTokenizer

    proprio_dim = 8  # LIBERO: 7-dim actions, 8-dim proprio -> chunks of 8
    directory, weights = released_directory(ref, tmp_path, 41, {"bridge_orig": BRIDGE})
    head, proprio = ref.oft_head_and_proprio(64, A, proprio_dim)
    torch.save(head, directory / "action_head--150000_checkpoint.pt")
    torch.save(proprio, directory / "proprio_projector--150000_checkpoint.pt")
    (directory / "dataset_statistics.json").write_text(json.dumps({"libero_spatial_no_noops": LIBERO}))

    policy = Policy.from_pretrained(directory, precision="fp32")
    assert policy.processor.variant == "oft" and policy.processor.center_crop and policy.processor.use_proprio
    rng = np.random.default_rng(1)
    full = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)  # camera resolution
    wrist = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    low, high = np.array(LIBERO["proprio"]["q01"]), np.array(LIBERO["proprio"]["q99"])
    state = low + (high - low) * rng.uniform(-0.2, 1.2, proprio_dim)  # some 20% outside q01..q99
    task = "Put the Bowl on the plate"
    observation = {"images": {"full_image": full, "wrist_image": wrist}, "task": task, "state": state}
    got = policy.act(observation)  # (8, A): the whole chunk

    # get_vla_action: all_images = [obs["full_image"]] + wrist images
    images = [full, wrist]
    # prepare_images_for_vla: resize_image_for_policy (JPEG round trip, TF lanczos3 to 224) when not 224 x 224
    # (tf_image_ops equals TensorFlow's ops bit for bit: test_tf_image_ops.py)
    images = [resize_like_rlds(img) if img.shape != (224, 224, 3) else img for img in images]
    # prepare_images_for_vla: Image.fromarray(image).convert("RGB"); center_crop_image (cfg.center_crop)
    images = [Image.fromarray(center_crop_and_resize(np.array(Image.fromarray(img).convert("RGB")))).convert("RGB")
              for img in images]
    # get_vla_action: prompt = f"In: What action should the robot take to {task_label.lower()}?\nOut:"
    prompt = f"In: What action should the robot take to {task.lower()}?\nOut:"
    # processor(prompt, image) for each image; pixel_values of the wrist images concatenated after the primary's
    tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    input_ids = tokenizer(prompt, return_tensors="pt").input_ids
    pixel_values = torch.stack([reference_pixel_values(directory, img) for img in images])[None]  # (1, N_cam, 6, ..)
    # normalize_proprio(obs["state"], norm_stats[unnorm_key]["proprio"]) (BOUNDS_Q99, mask, clip to [-1, 1])
    stats = LIBERO["proprio"]
    normalized_proprio = np.clip(np.where(stats["mask"], 2 * (state - low) / (high - low + 1e-8) - 1, state), -1, 1)
    # predict_action: append the empty token ("\u2581", 29871 in LLaMA-2) when the prompt does not end with it
    empty = tokenizer.convert_tokens_to_ids("\u2581")
    if not torch.all(input_ids[:, -1] == empty):
        input_ids = torch.cat((input_ids, torch.tensor([[empty]])), dim=1)
    # predict_action: placeholders + </s>, zeroed action embeddings, [patches, proprio] after <BOS>,
    # bidirectional LLaMA, the hidden states of the NUM_ACTIONS_CHUNK * ACTION_DIM action positions
    full_weights = {**weights, **{f"proprio_projector.{k.removeprefix('module.')}": v for k, v in proprio.items()}}
    hidden = ref.reference_oft_action_hidden(full_weights, pixel_values, input_ids,
                                             torch.from_numpy(normalized_proprio).float()[None],
                                             num_action_tokens=8 * A, proprio_dim=proprio_dim)
    # action_heads.L1RegressionActionHead.predict_action -> (NUM_ACTIONS_CHUNK, ACTION_DIM)
    with torch.no_grad():
        normalized = ref.reference_l1_head(head, hidden, chunk_size=8, prefix="module.model.")[0].double().numpy()
    # _unnormalize_actions (BOUNDS_Q99): where(mask, 0.5 * (a + 1) * (q99 - q01 + 1e-8) + q01, a)
    action = LIBERO["action"]
    q01, q99 = np.array(action["q01"]), np.array(action["q99"])
    expected = np.where(action["mask"], 0.5 * (normalized + 1) * (q99 - q01 + 1e-8) + q01, normalized)

    assert got.shape == (8, A)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)

    # Converted to a vla checkpoint (with camera names, for serving), the preset is recorded in
    # config.json and picked on reload.
    policy.processor.camera_names = ["full_image", "wrist_image"]
    out = tmp_path / "converted"
    with checkpoint_directory(out) as tmp:
        policy.vla.write_pretrained(tmp)
        policy.processor.save_pretrained(tmp)
    assert json.loads((out / "config.json").read_text())["model"]["processor"]["type"] == "OpenVLAProcessor"
    reloaded = Policy.from_pretrained(out, precision="fp32")
    assert isinstance(reloaded.processor, OpenVLAProcessor)
    np.testing.assert_array_equal(reloaded.act(observation), got)
    spec = ObservationSpec.from_policy(reloaded)
    assert spec.cameras == ["full_image", "wrist_image"] and spec.state_dim == proprio_dim
    checked, _ = spec.check({"full_image": full, "wrist_image": wrist, "state": state, "prompt": task})
    np.testing.assert_allclose(reloaded.act(checked), got, rtol=0, atol=1e-5)  # the wire state is float32


def test_unnorm_key_and_statistics_errors(ref, tmp_path):
    directory, _ = released_directory(ref, tmp_path, 51, {"bridge_orig": BRIDGE, "fractal20220817_data": FRACTAL})
    processor = OpenVLAProcessor.from_hf_directory(directory, unnorm_key="libero")
    with pytest.raises(DataError, match=r"'libero' is not in .*\['bridge_orig', 'fractal20220817_data'\]"):
        processor.unnormalize_actions(torch.zeros(1, 1, A))
    processor.unnorm_key = "fractal20220817_data"
    out = processor.unnormalize_actions(torch.full((1, 1, A), 0.5))
    np.testing.assert_allclose(out.numpy(), np.full((1, 1, A), 0.1))  # 0.5 * 1.5 * 0.4 - 0.2
    with pytest.raises(DataError, match="one image"):
        processor({"images": {"a": np.zeros((8, 8, 3), np.uint8), "b": np.zeros((8, 8, 3), np.uint8)}, "task": "x"})
