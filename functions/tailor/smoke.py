"""Write the tiny random parsing model in the real model's folder layout.

    python -m functions.tailor.smoke --out models/smoke
    # -> models/smoke/segformer_b2_clothes/{config.json, model.safetensors, preprocessor_config.json}

Same architecture family and label set as mattmdjaga/segformer_b2_clothes, a few
thousand parameters, seeded: it loads through the same code as the real weights, and its
output is meaningless (tests and smoke runs only).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from functions.tailor.labels import LABELS
from functions.tailor.loading import MODEL_NAME, SMOKE_MARKER
from functions.tailor.parsing import IMAGENET_MEAN, IMAGENET_STD


def smoke_config():  # -> SegformerConfig
    """A tiny SegFormer config with the real model's 18 labels."""
    from transformers import SegformerConfig

    config = SegformerConfig(
        depths=[1, 1, 1, 1],
        hidden_sizes=[8, 16, 24, 32],
        num_attention_heads=[1, 1, 2, 2],
        decoder_hidden_size=16,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={name: i for i, name in enumerate(LABELS)},
    )
    setattr(config, SMOKE_MARKER, True)
    return config


def preprocessor_config(size: int = 512) -> dict:
    """The image-processor settings the real model ships (SegformerImageProcessor)."""
    return {
        "image_processor_type": "SegformerImageProcessor",
        "do_resize": True,
        "size": {"height": size, "width": size},
        "resample": 2,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(IMAGENET_MEAN),
        "image_std": list(IMAGENET_STD),
        "do_reduce_labels": False,
    }


def write_smoke_model(out: Path, seed: int = 0) -> Path:
    """Write the smoke model under `out`/segformer_b2_clothes and return that folder."""
    from transformers import SegformerForSemanticSegmentation

    folder = Path(out) / MODEL_NAME
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = SegformerForSemanticSegmentation(smoke_config()).eval()
    with torch.no_grad():  # louder logits, so the random label map is not all one label
        model.decode_head.classifier.weight.normal_(0.0, 1.0)
    model.save_pretrained(folder, safe_serialization=True)
    (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor_config(), indent=2) + "\n")
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("models/smoke"),
        help="folder that receives segformer_b2_clothes/ (default models/smoke)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(write_smoke_model(args.out, args.seed))


if __name__ == "__main__":
    main()
