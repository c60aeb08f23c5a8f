"""The tiny random FASHN family: the spec's tiny network, tiny ONNX pose networks and a tiny
SegFormer parser with the real input and output signatures, in the real folder layout.

    python -m functions.weave.fashn.smoke [--out models/smoke] [--force]

Loaded by the same code as the real weights. The detector answers brightness (bright
regions are "people"), so photos exercise detection, NMS and the per-box pose path.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from functions.weave.fashn.loading import (
    DETECTOR,
    FOLDER,
    PARSER_DIR,
    POSE_MODEL,
    SMOKE_MARKER,
    FashnFiles,
    save_transformer,
)
from functions.weave.fashn.network import TryOnConfig, TryOnModel
from functions.weave.fashn.parsing import LABELS

SMOKE_POSE_INPUT = (64, 48)  # height, width (the real model: 384 x 288)


def tiny_transformer(seed: int = 0, config: TryOnConfig | None = None) -> TryOnModel:
    """Random tiny network; RMSNorm scales and patch-conv biases random too (ones and zeros hide bugs)."""
    torch.manual_seed(seed)
    model = TryOnModel(config or TryOnConfig.tiny())
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(".scale"):
                param.copy_(1 + 0.5 * torch.randn_like(param))
            elif name.endswith("embedder.proj.bias") or name == "y_embedder.weight":
                param.copy_(0.5 * torch.randn_like(param))
    return model


def detector_onnx(seed: int = 0) -> bytes:
    """(1, 3, 640, 640) -> (1, 8400, 85): average pools by 8, 16, 32, a 1x1 conv to 85 channels
    each, concatenated in stride order, sigmoid on columns 4 onwards."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weight = rng.normal(0, 0.002, (85, 3, 1, 1)).astype(np.float32)
    weight[4:6] = 0.01  # objectness and "person" follow brightness
    bias = np.zeros(85, dtype=np.float32)
    bias[2:4], bias[4:6] = 2.0, -5.0
    nodes, inits = (
        [],
        [
            numpy_helper.from_array(weight, "w"),
            numpy_helper.from_array(bias, "b"),
            numpy_helper.from_array(np.array([1, 85, -1], dtype=np.int64), "shape"),
            numpy_helper.from_array(np.array([4, 81], dtype=np.int64), "split"),
        ],
    )
    for stride in (8, 16, 32):
        nodes += [
            helper.make_node(
                "AveragePool", ["images"], [f"p{stride}"], kernel_shape=[stride, stride], strides=[stride, stride]
            ),
            helper.make_node("Conv", [f"p{stride}", "w", "b"], [f"c{stride}"]),
            helper.make_node("Reshape", [f"c{stride}", "shape"], [f"r{stride}"]),
        ]
    nodes += [
        helper.make_node("Concat", ["r8", "r16", "r32"], ["cat"], axis=2),
        helper.make_node("Transpose", ["cat"], ["rows"], perm=[0, 2, 1]),
        helper.make_node("Split", ["rows", "split"], ["box", "cls"], axis=2),
        helper.make_node("Sigmoid", ["cls"], ["prob"]),
        helper.make_node("Concat", ["box", "prob"], ["output"], axis=2),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_yolox",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 640, 640])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 8400, 85])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def pose_onnx(seed: int = 0, size: tuple[int, int] = SMOKE_POSE_INPUT) -> bytes:
    """(1, 3, H, W) -> simcc_x (1, 133, 2W), simcc_y (1, 133, 2H): a 1x1 conv to 133 channels,
    a mean over one spatial axis, a small matrix to double the bins."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed + 1)
    h, w = size
    inits = [
        numpy_helper.from_array(rng.normal(0, 1, (133, 3, 1, 1)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.normal(0, 0.2, 133).astype(np.float32), "b"),
        numpy_helper.from_array(rng.normal(0, 0.3, (w, 2 * w)).astype(np.float32), "mx"),
        numpy_helper.from_array(rng.normal(0, 0.3, (h, 2 * h)).astype(np.float32), "my"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "w", "b"], ["feat"]),
        helper.make_node("ReduceMean", ["feat"], ["over_rows"], axes=[2], keepdims=0),
        helper.make_node("ReduceMean", ["feat"], ["over_cols"], axes=[3], keepdims=0),
        helper.make_node("MatMul", ["over_rows", "mx"], ["simcc_x"]),
        helper.make_node("MatMul", ["over_cols", "my"], ["simcc_y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_rtmpose",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, h, w])],
        [
            helper.make_tensor_value_info("simcc_x", TensorProto.FLOAT, [1, 133, 2 * w]),
            helper.make_tensor_value_info("simcc_y", TensorProto.FLOAT, [1, 133, 2 * h]),
        ],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def tiny_parser(seed: int = 0) -> torch.nn.Module:
    """A tiny SegformerForSemanticSegmentation with the 18 FASHN labels."""
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    torch.manual_seed(seed)
    config = SegformerConfig(
        num_encoder_blocks=4,
        depths=[1, 1, 1, 1],
        hidden_sizes=[8, 16, 16, 16],
        num_attention_heads=[1, 1, 1, 1],
        decoder_hidden_size=16,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={n: i for i, n in enumerate(LABELS)},
    )
    return SegformerForSemanticSegmentation(config)


def _write(root: Path, seed: int) -> None:
    save_transformer(tiny_transformer(seed), root)
    (root / DETECTOR).parent.mkdir(parents=True, exist_ok=True)
    (root / DETECTOR).write_bytes(detector_onnx(seed))
    (root / POSE_MODEL).write_bytes(pose_onnx(seed))
    tiny_parser(seed).save_pretrained(root / PARSER_DIR)
    (root / SMOKE_MARKER).write_text(json.dumps({"model": "smoke", "family": FOLDER, "seed": seed, "num_threads": 1}))


def write_smoke_fashn(out: Path | str = Path("models/smoke"), *, seed: int = 0, force: bool = False) -> Path:
    """Write the tiny family to `out/fashn-vton-1.5` unless a complete one is there; its folder."""
    target = Path(out) / FOLDER
    files = FashnFiles(target)
    if files.is_smoke and not files.missing() and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".fashn-smoke-", dir=target.parent))
    try:
        _write(tmp, seed)
        shutil.rmtree(target, ignore_errors=True)
        try:
            os.rename(tmp, target)
        except OSError:  # a concurrent writer placed the same (seeded) files first
            if not FashnFiles(target).is_smoke:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("models/smoke"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="rewrite even if complete")
    args = parser.parse_args(argv)
    path = write_smoke_fashn(args.out, seed=args.seed, force=args.force)
    print(f"FASHN smoke model (tiny random weights) in {path}")


if __name__ == "__main__":
    main()
