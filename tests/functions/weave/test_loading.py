"""Loading: the smoke model's layout, the attention checkpoint check, smoke vs real, weight
file variants, compile warm-up. (Fetching from Hugging Face: test_weights.py.)"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from functions.weave.attention import attn1_modules, load_attention_weights
from functions.weave.loading import (
    WeaveModelConfig,
    build_scheduler,
    load_pipeline,
    load_pipelines,
    resolve_dtype,
    resolve_model,
)
from functions.weave.pipeline_common import PipelineOptions
from functions.weave.request import TryOnRequest
from functions.weave.smoke import is_complete, tiny_unet, write_smoke_model
from functions.weave.weights import (
    ATTENTION_DIRS,
    ATTENTION_SUBPATH,
    BASE_DIRS,
    MODEL_WEIGHTS,
    SMOKE_MARKER,
    ModelLoadError,
    find_weights,
)
from shared.errors import DependencyUnavailable

SUFFIXES = ("to_q.weight", "to_k.weight", "to_v.weight", "to_out.0.weight", "to_out.0.bias")


def attention_file(root: Path, variant: str = "maskfree") -> Path:
    return root / ATTENTION_DIRS[variant] / ATTENTION_SUBPATH


def copy_real_layout(smoke: Path, dest: Path) -> Path:
    """The smoke files laid out as if they were the real weights (no smoke marker)."""
    shutil.copytree(smoke, dest, ignore=shutil.ignore_patterns(SMOKE_MARKER, ".*"))
    return dest


def test_smoke_model_has_the_real_layout(weave_models_dir: Path) -> None:
    root = weave_models_dir / "smoke"
    for rel in (
        "sd-vae-ft-mse/config.json",
        "sd-vae-ft-mse/diffusion_pytorch_model.safetensors",
        "stable-diffusion-inpainting/unet/config.json",
        "stable-diffusion-inpainting/scheduler/scheduler_config.json",
        "instruct-pix2pix/unet/diffusion_pytorch_model.safetensors",
        "CatVTON/mix-48k-1024/attention/model.safetensors",
        "CatVTON-MaskFree/mix-48k-1024/attention/model.safetensors",
        SMOKE_MARKER,
    ):
        assert (root / rel).is_file(), rel
    keys = load_file(str(attention_file(root)))
    assert sorted({int(k.split(".")[0]) for k in keys}) == [0, 8, 16, 24]  # released scheme
    assert len(keys) == 4 * 5
    unet_config = json.loads((root / "stable-diffusion-inpainting/unet/config.json").read_text())
    assert unet_config["in_channels"] == 9 and unet_config["block_out_channels"] == [32, 64]


def test_smoke_writer_is_idempotent_and_leaves_other_models(tmp_path: Path) -> None:
    root = tmp_path / "smoke"
    (root / "segformer_b2_clothes").mkdir(parents=True)
    (root / "segformer_b2_clothes" / "config.json").write_text("{}")
    write_smoke_model(root)
    stamp = attention_file(root).stat().st_mtime_ns
    write_smoke_model(root)
    assert attention_file(root).stat().st_mtime_ns == stamp
    attention_file(root).unlink()  # incomplete: rewritten
    assert not is_complete(root)
    write_smoke_model(root)
    assert is_complete(root)
    assert (root / "segformer_b2_clothes" / "config.json").read_text() == "{}"
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_pipelines_share_vae_and_safety_checker(pipelines) -> None:
    free, masked = pipelines["maskfree"], pipelines["mask"]
    assert free.vae is masked.vae and free.safety_checker is masked.safety_checker
    assert free.unet is not masked.unet


def test_attention_weights_map_released_indices_onto_attn1_modules(pipelines, weave_models_dir) -> None:
    for variant, pipe in pipelines.items():
        state = load_file(str(attention_file(weave_models_dir / "smoke", variant)))
        modules = attn1_modules(pipe.unet)
        assert len(modules) == 4
        for k, (_, module) in enumerate(modules):
            params = dict(module.named_parameters())
            for suffix in SUFFIXES:
                assert torch.equal(params[suffix], state[f"{8 * k}.{suffix}"])


def test_attention_file_differs_from_base_weights(weave_models_dir: Path) -> None:
    from diffusers import UNet2DConditionModel

    root = weave_models_dir / "smoke"
    base = UNet2DConditionModel.from_pretrained(str(root / BASE_DIRS["maskfree"] / "unet"))
    before = attn1_modules(base)[0][1].to_q.weight.clone()
    load_attention_weights(base, attention_file(root))
    assert not torch.equal(before, attn1_modules(base)[0][1].to_q.weight)


def _broken(tmp_path: Path, weave_models_dir: Path, edit) -> Path:
    state = load_file(str(attention_file(weave_models_dir / "smoke")))
    edit(state)
    path = tmp_path / "model.safetensors"
    save_file(state, str(path))
    return path


@pytest.mark.parametrize(
    "edit,expected",
    [
        (lambda s: s.pop("8.to_k.weight"), ["found 19", "missing: 8.to_k.weight"]),
        (lambda s: [s.pop(f"24.{x}") for x in SUFFIXES], ["found 15", "missing: 24.to_q.weight, 24.to_k.weight"]),
        (lambda s: s.update({"32.to_q.weight": s["0.to_q.weight"].clone()}), ["5 module indices"]),
        (lambda s: s.update({"0.norm.weight": torch.ones(1)}), ["unexpected keys: 0.norm.weight"]),
    ],
)
def test_loader_refuses_incomplete_attention_weights(tmp_path, weave_models_dir, edit, expected) -> None:
    path = _broken(tmp_path, weave_models_dir, edit)
    with pytest.raises(ModelLoadError) as info:
        load_attention_weights(tiny_unet(8), path)
    message = str(info.value)
    assert "expected 4 attn1 modules x 5 = 20 tensors" in message
    for text in expected:
        assert text in message


def test_loader_refuses_mis_shaped_tensor(tmp_path, weave_models_dir) -> None:
    path = _broken(tmp_path, weave_models_dir, lambda s: s.update({"0.to_q.weight": torch.zeros(3, 3)}))
    with pytest.raises(ModelLoadError, match=r"0\.to_q\.weight has shape \(3, 3\)"):
        load_attention_weights(tiny_unet(8), path)


def test_load_pipeline_refuses_a_checkpoint_lacking_a_tensor(tmp_path, weave_models_dir) -> None:
    models = copy_real_layout(weave_models_dir / "smoke", tmp_path / "models")
    target = attention_file(models, "mask")
    state = load_file(str(target))
    del state["16.to_out.0.bias"]
    save_file(state, str(target))
    config = WeaveModelConfig(model="real", models_dir=models, device="cpu", variants=("mask",))
    with pytest.raises(ModelLoadError, match=r"missing: 16\.to_out\.0\.bias"):
        load_pipeline(config, "mask")


def test_auto_without_real_weights_uses_smoke_loudly(tmp_path, caplog) -> None:
    config = WeaveModelConfig(model="auto", models_dir=tmp_path / "empty", device="cpu")
    with caplog.at_level(logging.WARNING, logger="functions.weave.loading"):
        assert resolve_model(config) == "smoke"
    assert "SMOKE MODEL" in caplog.text and "make models" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="functions.weave.loading"):
        assert resolve_model(WeaveModelConfig(model="smoke", models_dir=tmp_path)) == "smoke"
    assert "SMOKE MODEL" in caplog.text and "configured" in caplog.text


def test_auto_smoke_is_written_on_demand_and_tagged(tmp_path) -> None:
    config = WeaveModelConfig(model="auto", models_dir=tmp_path / "models", device="cpu")
    pipe = load_pipeline(config, "maskfree")
    assert pipe.model_name == "smoke" and is_complete(tmp_path / "models" / "smoke")
    result = pipe([TryOnRequest(person=_image(), garment=_image(), steps=1, height=128, width=64, seed=1)])[0]
    assert result.metadata["model"] == "smoke"


def test_real_layout_loads_as_catvton(tmp_path, weave_models_dir) -> None:
    models = copy_real_layout(weave_models_dir / "smoke", tmp_path / "models")
    config = WeaveModelConfig(model="auto", models_dir=models, device="cpu")
    assert resolve_model(config) == "real"
    pipe = load_pipeline(config, "mask")
    assert pipe.model_name == "catvton" and pipe.options.max_render_pixels is None
    assert pipe.catvton_variant == "mask" and pipe.unet.config.in_channels == 9


def test_real_model_required_but_missing(tmp_path) -> None:
    config = WeaveModelConfig(model="real", models_dir=tmp_path, device="cpu")
    assert resolve_model(config) == "real"
    with pytest.raises(DependencyUnavailable, match="sd-vae-ft-mse"):
        load_pipeline(config, "maskfree")


def test_scheduler_settings_are_forced(tmp_path) -> None:
    folder = tmp_path / "scheduler"
    folder.mkdir()
    (folder / "scheduler_config.json").write_text(
        json.dumps(
            {
                "_class_name": "EulerAncestralDiscreteScheduler",
                "beta_schedule": "linear",
                "clip_sample": True,
                "set_alpha_to_one": True,
                "steps_offset": 0,
            }
        )
    )
    scheduler = build_scheduler(folder)
    c = scheduler.config
    assert type(scheduler).__name__ == "DDIMScheduler"
    assert (c.clip_sample, c.set_alpha_to_one, c.steps_offset) == (False, False, 1)
    assert (c.beta_schedule, c.beta_start, c.beta_end, c.num_train_timesteps) == ("scaled_linear", 0.00085, 0.012, 1000)


def test_dtype_and_config_choices() -> None:
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert resolve_dtype("fp16", torch.device("cuda")) == torch.float16
    for bad in ({"model": "big"}, {"source": "ftp"}, {"variants": ("both",)}, {"dtype": "int8"}):
        with pytest.raises(ValueError):
            WeaveModelConfig(**bad)


@pytest.mark.parametrize("save", [{"safe_serialization": False}, {"variant": "fp16"}])
def test_bin_or_fp16_only_weights_load(tmp_path, weave_models_dir, save) -> None:
    from diffusers import UNet2DConditionModel

    models = copy_real_layout(weave_models_dir / "smoke", tmp_path / "models")
    unet_dir = models / BASE_DIRS["maskfree"] / "unet"
    unet = UNet2DConditionModel.from_pretrained(str(unet_dir))
    shutil.rmtree(unet_dir)
    kwargs = dict(save)
    if "variant" in kwargs:
        unet = unet.half()
    unet.save_pretrained(str(unet_dir), **kwargs)
    assert find_weights(unet_dir) is not None and find_weights(unet_dir).name != MODEL_WEIGHTS[0]
    config = WeaveModelConfig(model="auto", models_dir=models, device="cpu", variants=("maskfree",))
    assert resolve_model(config) == "real"
    pipe = load_pipeline(config, "maskfree")
    assert pipe.unet.dtype == torch.float32
    result = pipe([TryOnRequest(person=_image(), garment=_image(), steps=1, height=128, width=64, seed=1)])[0]
    assert result.image.size == (64, 128)


def _image():
    from PIL import Image

    return Image.linear_gradient("L").convert("RGB").resize((96, 160))


@pytest.mark.parametrize("switches, mode", [({"compile": True}, "default"), ({"cuda_graphs": True}, "reduce-overhead")])
def test_compiled_pipelines_are_warmed_up_before_they_are_returned(
    monkeypatch, smoke_config, caplog, switches, mode
) -> None:
    """torch.compile is replaced by a recorder here (compiling on this CPU takes minutes);
    the real compile was checked by hand to give the eager pixels within 1/255."""
    compiled: list[tuple[torch.nn.Module, str]] = []

    def record(module, mode="default", **kwargs):
        compiled.append((module, mode))
        return module

    monkeypatch.setattr(torch, "compile", record)
    config = dataclasses.replace(smoke_config, options=PipelineOptions(**switches))
    with caplog.at_level(logging.INFO, logger="functions.weave.loading"):
        pipes = load_pipelines(config)
    assert [(module, m) for module, m in compiled] == [(p.unet, mode) for p in pipes.values()]
    warmed = [r.getMessage() for r in caplog.records if "compiled the weave" in r.getMessage()]
    assert len(warmed) == 2 and all("batches [2, 8, 1]" in m for m in warmed)


def test_uncompiled_pipelines_load_without_a_warm_up(smoke_config, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="functions.weave.loading"):
        load_pipelines(smoke_config)
    assert not [r for r in caplog.records if "compiled the weave" in r.getMessage()]
