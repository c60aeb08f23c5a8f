"""Weights from Hugging Face: the hub source downloads by id with the token, `fetch` picks
the best weights file a repo has, and the download script fetches each repo with patterns."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from functions.weave import download
from functions.weave.loading import WeaveModelConfig, load_pipeline, resolve_model
from functions.weave.weights import (
    ATTENTION_DIRS,
    BASE_DIRS,
    HUB_IDS,
    MODEL_WEIGHTS,
    VAE_DIR,
    HubFetch,
    fetch,
    missing_files,
)
from shared.errors import DependencyUnavailable


def _fake_hub(monkeypatch, smoke: Path, tmp_path: Path, calls: list) -> None:
    """Hub repos served from the smoke folders: list_repo_files + snapshot_download that
    copies only the files matching allow_patterns (so the patterns are what is tested)."""
    import fnmatch

    import huggingface_hub

    sources = {
        HUB_IDS["vae"]: smoke / VAE_DIR,
        HUB_IDS["maskfree"]: smoke / BASE_DIRS["maskfree"],
        HUB_IDS["mask"]: smoke / BASE_DIRS["mask"],
        HUB_IDS["attention-maskfree"]: smoke / ATTENTION_DIRS["maskfree"],
        HUB_IDS["attention-mask"]: smoke / ATTENTION_DIRS["mask"],
    }

    def files(repo_id: str) -> list[str]:
        root = sources[repo_id]
        return [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]

    def snapshot(repo_id, *, allow_patterns, token=None, local_dir=None, **kwargs):
        calls.append((repo_id, token, list(allow_patterns), local_dir))
        dest = Path(local_dir) if local_dir else tmp_path / "cache" / repo_id.replace("/", "--")
        for rel in files(repo_id):
            if any(fnmatch.fnmatch(rel, pattern) for pattern in allow_patterns):
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(sources[repo_id] / rel, dest / rel)
        return str(dest)

    monkeypatch.setattr(huggingface_hub, "list_repo_files", lambda repo_id, token=None: files(repo_id))
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot)


def test_hub_source_downloads_by_id_with_token(monkeypatch, weave_models_dir, tmp_path) -> None:
    import huggingface_hub

    calls: list = []
    _fake_hub(monkeypatch, weave_models_dir / "smoke", tmp_path, calls)
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    config = WeaveModelConfig(model="real", source="hub", models_dir=tmp_path, device="cpu")
    assert resolve_model(WeaveModelConfig(source="hub", models_dir=tmp_path)) == "real"
    pipe = load_pipeline(config, "maskfree")
    assert pipe.model_name == "catvton" and pipe.safety_checker is not None
    assert {c[0] for c in calls} == {
        HUB_IDS["vae"],
        HUB_IDS["maskfree"],
        HUB_IDS["mask"],
        HUB_IDS["attention-maskfree"],
    }
    assert all(c[1] == "hf_test" for c in calls)
    base = next(c for c in calls if c[0] == HUB_IDS["maskfree"])
    assert "unet/diffusion_pytorch_model.safetensors" in base[2]

    def offline(repo_id, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(huggingface_hub, "list_repo_files", offline)
    with pytest.raises(DependencyUnavailable, match="HF_TOKEN set"):
        load_pipeline(config, "maskfree")


@pytest.mark.parametrize(
    "present,chosen",
    [
        (["a.safetensors"], None),
        (["unet/diffusion_pytorch_model.bin"], "unet/diffusion_pytorch_model.bin"),
        (
            ["unet/diffusion_pytorch_model.bin", "unet/diffusion_pytorch_model.fp16.safetensors"],
            "unet/diffusion_pytorch_model.fp16.safetensors",
        ),
        (
            [
                "unet/diffusion_pytorch_model.bin",
                "unet/diffusion_pytorch_model.safetensors",
                "unet/diffusion_pytorch_model.fp16.safetensors",
            ],
            "unet/diffusion_pytorch_model.safetensors",
        ),
    ],
)
def test_fetch_picks_the_best_weights_a_repo_has(monkeypatch, tmp_path, present, chosen) -> None:
    import huggingface_hub

    got: list = []
    monkeypatch.setattr(huggingface_hub, "list_repo_files", lambda repo_id, token=None: present)
    monkeypatch.setattr(
        huggingface_hub, "snapshot_download", lambda repo_id, allow_patterns, **k: got.append(allow_patterns) or "x"
    )
    item = HubFetch("org/base", "base", ("unet/config.json",), (("unet/", MODEL_WEIGHTS),))
    if chosen is None:
        with pytest.raises(DependencyUnavailable, match="org/base has no weights in 'unet/'"):
            fetch(item)
    else:
        fetch(item, local_dir=tmp_path)
        assert got == [["unet/config.json", chosen]]


def test_download_script_fetches_each_repo_with_patterns(monkeypatch, tmp_path, weave_models_dir) -> None:
    calls: list = []
    _fake_hub(monkeypatch, weave_models_dir / "smoke", tmp_path / "hub", calls)
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    models = tmp_path / "models"
    assert download.main(["--models-dir", str(models)]) == 0
    repos = [c[0] for c in calls]
    assert sorted(repos) == sorted(HUB_IDS.values())
    assert all(c[1] == "hf_secret" for c in calls)
    assert (
        "zhengchong/CatVTON-MaskFree",
        "hf_secret",
        ["mix-48k-1024/attention/*"],
        str(models / "CatVTON-MaskFree"),
    ) in calls
    assert not missing_files(models, ("maskfree", "mask"))
    assert (models / "stable-diffusion-inpainting/safety_checker/config.json").is_file()
    assert sorted(p.name for p in (models / "instruct-pix2pix/unet").iterdir()) == [
        "config.json",
        "diffusion_pytorch_model.safetensors",
    ]  # only what is loaded
    pipe = load_pipeline(WeaveModelConfig(models_dir=models, device="cpu"), "mask")
    assert pipe.model_name == "catvton" and pipe.safety_checker is not None

    calls.clear()
    assert (
        download.main(["--models-dir", str(tmp_path / "other"), "--variants", "maskfree", "--no-safety-checker"]) == 0
    )
    assert sorted(c[0] for c in calls) == sorted([HUB_IDS["vae"], HUB_IDS["maskfree"], HUB_IDS["attention-maskfree"]])
