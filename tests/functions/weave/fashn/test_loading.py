"""The loader refuses incomplete or mismatched checkpoints, naming the tensors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from functions.weave.fashn.loading import (
    CheckpointError,
    FashnFiles,
    check_state_dict,
    load_fashn_pipeline,
    load_transformer,
)
from functions.weave.fashn.network import TryOnConfig, expected_shapes
from functions.weave.fashn.smoke import tiny_transformer
from shared.errors import DependencyUnavailable


@pytest.fixture
def copy(fashn_root: Path, tmp_path: Path) -> Path:
    target = tmp_path / "fashn"
    shutil.copytree(fashn_root, target)
    return target


def _rewrite(root: Path, change) -> None:
    state = load_file(str(root / "model.safetensors"))
    change(state)
    save_file(state, str(root / "model.safetensors"))


def test_smoke_checkpoint_is_bf16_and_loads_exactly(fashn_root: Path) -> None:
    state = load_file(str(fashn_root / "model.safetensors"))
    assert {t.dtype for t in state.values()} == {torch.bfloat16} and len(state) == 94
    model = load_transformer(FashnFiles(fashn_root), torch.device("cpu"), torch.float32)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, state[name].float()), name  # bf16 -> fp32 is exact


def test_missing_tensor_is_named(copy: Path) -> None:
    _rewrite(copy, lambda s: s.pop("double_blocks.1.txt_attn.norm.key_norm.scale"))
    with pytest.raises(CheckpointError) as err:
        load_transformer(FashnFiles(copy), torch.device("cpu"), torch.float32)
    assert "1 missing: double_blocks.1.txt_attn.norm.key_norm.scale" in err.value.message


def test_unexpected_tensor_is_named(copy: Path) -> None:
    _rewrite(copy, lambda s: s.update({"guidance_in.in_layer.weight": torch.zeros(2, 2, dtype=torch.bfloat16)}))
    with pytest.raises(CheckpointError) as err:
        load_transformer(FashnFiles(copy), torch.device("cpu"), torch.float32)
    assert "1 unexpected: guidance_in.in_layer.weight" in err.value.message


def test_missing_patch_mixer_token_is_refused(copy: Path) -> None:
    _rewrite(copy, lambda s: s.pop("patch_mixer_token"))
    with pytest.raises(CheckpointError, match="patch_mixer_token"):
        load_transformer(FashnFiles(copy), torch.device("cpu"), torch.float32)


def test_wrong_shape_is_named(copy: Path) -> None:
    _rewrite(copy, lambda s: s.update({"final_layer.linear.bias": torch.zeros(47, dtype=torch.bfloat16)}))
    with pytest.raises(CheckpointError) as err:
        load_transformer(FashnFiles(copy), torch.device("cpu"), torch.float32)
    assert "final_layer.linear.bias (47,) (expected (48,))" in err.value.message


def test_architecture_read_from_the_weights_must_agree_with_the_configuration() -> None:
    shapes = {k: tuple(v.shape) for k, v in tiny_transformer(0).state_dict().items()}
    with pytest.raises(CheckpointError) as err:
        check_state_dict(shapes, TryOnConfig(), "tiny.safetensors")
    message = err.value.message
    assert "hidden_size 64 (configured 1280)" in message and "double_blocks_depth 2 (configured 8)" in message
    deeper = TryOnConfig.tiny().__class__(**{**TryOnConfig.tiny().to_dict(), "single_blocks_depth": 3})
    with pytest.raises(CheckpointError, match=r"single_blocks\.2\.linear1\.weight"):
        check_state_dict(shapes, deeper)
    check_state_dict(shapes, TryOnConfig.tiny())
    assert len(expected_shapes(TryOnConfig.tiny())) == 94


def test_missing_files_are_named(copy: Path) -> None:
    (copy / "dwpose" / "yolox_l.onnx").unlink()
    with pytest.raises(DependencyUnavailable, match="yolox_l.onnx"):
        load_fashn_pipeline(copy, device=torch.device("cpu"), dtype=torch.float32)


def test_commercial_loading_needs_no_parser(copy: Path) -> None:
    shutil.rmtree(copy / "human-parser")
    with pytest.raises(DependencyUnavailable, match="human-parser"):
        load_fashn_pipeline(copy, device=torch.device("cpu"), dtype=torch.float32)
    pipe = load_fashn_pipeline(copy, device=torch.device("cpu"), dtype=torch.float32, parser=False)
    assert pipe.human_parser is None


def test_onnx_signatures_are_checked(copy: Path) -> None:
    from functions.weave.fashn.pose import PoseModelError

    shutil.copy(copy / "dwpose" / "yolox_l.onnx", copy / "dwpose" / "dw-ll_ucoco_384.onnx")
    with pytest.raises(PoseModelError, match="pose model"):
        load_fashn_pipeline(copy, device=torch.device("cpu"), dtype=torch.float32)
