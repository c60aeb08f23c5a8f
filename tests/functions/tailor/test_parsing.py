"""The parsing model: smoke weights through the real loading code, folding, upsampling."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from functions.tailor.loading import (
    MODEL_NAME,
    TailorModelConfig,
    load_folder,
    load_parser,
    missing_files,
)
from functions.tailor.parsing import HumanParser
from functions.tailor.smoke import smoke_config, write_smoke_model
from shared.errors import DependencyUnavailable


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    write_smoke_model(root / "smoke")
    return root


def random_image(height: int, width: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_smoke_model_is_written_in_the_real_layout(models_dir):
    folder = models_dir / "smoke" / MODEL_NAME
    assert missing_files(folder) == []
    config = json.loads((folder / "config.json").read_text())
    assert len(config["id2label"]) == 18
    assert config["id2label"]["11"] == "face"
    preprocessing = json.loads((folder / "preprocessor_config.json").read_text())
    assert preprocessing["size"] == {"height": 512, "width": 512}


def test_smoke_model_runs_end_to_end(models_dir):
    parser = load_parser(TailorModelConfig(models_dir=models_dir, model="smoke"))
    assert parser.name == "smoke"
    labels = parser.parse(random_image(45, 70))
    assert labels.shape == (45, 70)
    assert labels.dtype == np.uint8 and labels.max() < 18
    assert len(np.unique(labels)) > 1  # the smoke model's logits are loud enough to vary
    assert np.array_equal(parser.parse(random_image(45, 70)), labels)  # deterministic


def test_auto_falls_back_to_smoke_with_a_warning(models_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="functions.tailor.loading"):
        parser = load_parser(TailorModelConfig(models_dir=models_dir, model="auto"))
    assert parser.name == "smoke"
    assert "SMOKE test model" in caplog.text and "not real results" in caplog.text


def test_auto_prefers_real_weights(models_dir, tmp_path, caplog):
    # A real-layout folder (here holding a non-smoke copy of the tiny model) wins over smoke.
    from transformers import SegformerForSemanticSegmentation

    config = smoke_config()
    delattr(config, "proteus_smoke")
    folder = tmp_path / MODEL_NAME
    SegformerForSemanticSegmentation(config).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(
        (models_dir / "smoke" / MODEL_NAME / "preprocessor_config.json").read_text()
    )
    with caplog.at_level(logging.WARNING):
        parser = load_parser(TailorModelConfig(models_dir=tmp_path, model="auto"))
    assert parser.name == "segformer_b2_clothes"
    assert "SMOKE" not in caplog.text


def test_missing_folder_fails_clearly(tmp_path):
    with pytest.raises(DependencyUnavailable) as info:
        load_parser(TailorModelConfig(models_dir=tmp_path, model="real"))
    message = info.value.message
    assert str(tmp_path / MODEL_NAME) in message
    assert "model.safetensors" in message and "functions.tailor.download" in message
    assert info.value.status == 503
    with pytest.raises(DependencyUnavailable, match="functions.tailor.smoke"):
        load_parser(TailorModelConfig(models_dir=tmp_path, model="smoke"))
    with pytest.raises(DependencyUnavailable):  # auto: neither real nor smoke present
        load_parser(TailorModelConfig(models_dir=tmp_path, model="auto"))


def test_incomplete_folder_names_the_missing_file(models_dir, tmp_path):
    folder = tmp_path / MODEL_NAME
    folder.mkdir()
    (folder / "config.json").write_text((models_dir / "smoke" / MODEL_NAME / "config.json").read_text())
    with pytest.raises(DependencyUnavailable) as info:
        load_folder(folder)
    assert "model.safetensors" in info.value.message and "config.json," not in info.value.message


def test_hub_source_loads_the_downloaded_snapshot(models_dir, monkeypatch):
    import huggingface_hub

    calls = []

    def fake_snapshot(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        return str(models_dir / "smoke" / MODEL_NAME)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    parser = load_parser(TailorModelConfig(models_dir=models_dir, model="real", source="hub"))
    assert calls[0][0] == "mattmdjaga/segformer_b2_clothes"
    wanted = {"config.json", "model.safetensors", "preprocessor_config.json"}
    assert set(calls[0][1]["allow_patterns"]) == wanted
    assert parser.name == "smoke"  # the snapshot is the smoke model: its config says so


def test_hub_source_unreachable_fails_in_real_mode_and_falls_back_in_auto(models_dir, monkeypatch):
    import huggingface_hub

    def offline(repo_id, **kwargs):
        raise OSError("no connection to huggingface.co")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    config = TailorModelConfig(models_dir=models_dir, model="real", source="hub")
    with pytest.raises(DependencyUnavailable, match="no connection"):
        load_parser(config)
    assert load_parser(TailorModelConfig(models_dir=models_dir, model="auto", source="hub")).name == "smoke"


def test_preprocessing_matches_the_models_image_processor(models_dir):
    processor_class = pytest.importorskip("transformers").SegformerImageProcessorPil
    folder = models_dir / "smoke" / MODEL_NAME
    processor = processor_class.from_pretrained(folder)
    parser = load_folder(folder)
    image = random_image(123, 77, seed=3)
    expected = processor(images=image, return_tensors="pt")["pixel_values"]
    assert torch.allclose(parser.preprocess(image).contiguous(), expected, atol=1e-5)


def tiny_model_with_trained_looking_head() -> torch.nn.Module:
    from transformers import SegformerForSemanticSegmentation

    torch.manual_seed(1)
    model = SegformerForSemanticSegmentation(smoke_config()).eval()
    head = model.decode_head
    with torch.no_grad():  # non-trivial batch-norm statistics and larger weights
        head.batch_norm.running_mean.normal_()
        head.batch_norm.running_var.uniform_(0.5, 2.0)
        head.batch_norm.weight.normal_()
        head.batch_norm.bias.normal_()
        for parameter in head.parameters():
            parameter.mul_(3)
    return model


def test_folded_decoder_equals_the_transformers_forward():
    model = tiny_model_with_trained_looking_head()
    folded = HumanParser(model, name="t", fold_decoder=True, channels_last=True)
    plain = HumanParser(model, name="t", fold_decoder=False, channels_last=False)
    image = random_image(90, 60, seed=5)
    expected = plain.logits(image)
    assert torch.allclose(folded.logits(image), expected, atol=1e-4 * expected.abs().max().item())


def test_parse_is_bilinear_upsampling_then_argmax(monkeypatch):
    parser = HumanParser(tiny_model_with_trained_looking_head(), name="t")
    torch.manual_seed(2)
    logits = torch.randn(1, 18, 128, 128)
    monkeypatch.setattr(parser, "logits", lambda image: logits)
    monkeypatch.setattr("functions.tailor.parsing._BAND_BYTES", 18 * 4 * 1000 * 7)  # 7-row bands
    for height, width in [(300, 217), (64, 50), (600, 1000)]:
        expected = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
        expected = expected.argmax(dim=1)[0].numpy()
        labels = parser.parse(random_image(height, width))
        assert labels.shape == (height, width)
        assert np.mean(labels == expected) > 0.9999


def test_wrong_label_count_is_refused():
    from transformers import SegformerForSemanticSegmentation

    config = smoke_config()
    config.num_labels = 5
    config.id2label = {i: str(i) for i in range(5)}
    config.label2id = {str(i): i for i in range(5)}
    with pytest.raises(ValueError, match="18-label"):
        HumanParser(SegformerForSemanticSegmentation(config), name="t")
