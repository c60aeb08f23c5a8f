"""make models for FASHN VTON: every file fetched into the layout the loader reads, then checked
by size and hash (huggingface_hub replaced by a local fake: no network in tests)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from functions.weave.fashn import download as dl


@pytest.fixture
def fake_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    files = {
        "fashn-ai/fashn-vton-1.5/model.safetensors": b"w" * 64,
        "fashn-ai/DWPose/yolox_l.onnx": b"d" * 32,
        "fashn-ai/DWPose/dw-ll_ucoco_384.onnx": b"p" * 16,
        "fashn-ai/fashn-human-parser/config.json": b"{}",
        "fashn-ai/fashn-human-parser/model.safetensors": b"s" * 8,
    }
    cache = tmp_path / "cache"

    def hf_hub_download(repo_id: str, filename: str, token: str | None = None) -> str:
        path = cache / repo_id / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[f"{repo_id}/{filename}"])
        return str(path)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    sizes = {"yolox_l.onnx": 32, "dw-ll_ucoco_384.onnx": 16}
    monkeypatch.setattr(
        dl,
        "FILES",
        tuple(
            dl.Remote(
                r.repo_id,
                r.filename,
                r.target,
                size=sizes.get(r.filename),
                min_size=1,
                sha256=hashlib.sha256(files[f"{r.repo_id}/{r.filename}"]).hexdigest() if r.sha256 else None,
            )
            for r in dl.FILES
        ),
    )
    monkeypatch.setattr(dl, "PARSER_MIN_SIZE", 1)
    return files


def test_download_fills_the_layout_and_checks_it(tmp_path: Path, fake_hub) -> None:
    models = tmp_path / "models"
    assert dl.main(["--models-dir", str(models)]) == 0
    root = models / "fashn-vton-1.5"
    assert (root / "model.safetensors").read_bytes() == fake_hub["fashn-ai/fashn-vton-1.5/model.safetensors"]
    assert (root / "dwpose" / "yolox_l.onnx").is_file() and (root / "human-parser" / "config.json").is_file()


def test_a_corrupt_file_is_named(tmp_path: Path, fake_hub, monkeypatch) -> None:
    fake_hub["fashn-ai/DWPose/yolox_l.onnx"] = b"x" * 32  # right size, wrong bytes
    problems = dl.download(tmp_path / "models", parser=False)
    assert len(problems) == 1 and "yolox_l.onnx has SHA-256" in problems[0]


def test_no_parser_skips_the_non_commercial_parser(tmp_path: Path, fake_hub) -> None:
    assert dl.download(tmp_path / "models", parser=False) == []
    assert not (tmp_path / "models" / "fashn-vton-1.5" / "human-parser").exists()
