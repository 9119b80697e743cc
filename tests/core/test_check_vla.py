"""vla_core.testing.check_vla: passes for a working VLA, and fails for each broken promise."""

from __future__ import annotations

import pytest
import torch

import vla_core
from vla_core.testing import check_vla, make_tiny_batch, tiny_vla_spec


@pytest.fixture
def vla():
    torch.manual_seed(0)
    return vla_core.build_vla(tiny_vla_spec())


def test_a_working_vla_passes(vla):
    check_vla(vla, make_tiny_batch())


def test_a_part_the_loss_never_reaches_fails(vla):
    vla.vision_backbone.register_forward_hook(lambda module, args, output: output.detach())
    with pytest.raises(AssertionError, match="does not reach the VLA's part 'vision_backbone'"):
        check_vla(vla, make_tiny_batch())


def test_predictions_of_the_wrong_shape_fail(vla):
    vla.predict_action = lambda **kwargs: torch.zeros(2, 3, 3)
    with pytest.raises(AssertionError, match=r"predict_action must give \(B, T, A\)"):
        check_vla(vla, make_tiny_batch())


def test_a_checkpoint_that_predicts_otherwise_fails(vla, monkeypatch):
    from vla_core.models import base_vla

    original = base_vla.BaseVLA.write_pretrained

    def write_other_weights(self, directory, extra_config=None, state_dict=None):
        state = {k: v + 0.5 if "vla_head" in k else v for k, v in self.state_dict().items()}
        return original(self, directory, extra_config, state)

    monkeypatch.setattr(base_vla.BaseVLA, "write_pretrained", write_other_weights)
    with pytest.raises(AssertionError, match="saved and reloaded VLA predicts other actions"):
        check_vla(vla, make_tiny_batch())
