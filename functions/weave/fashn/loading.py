"""Loading FASHN VTON v1.5: the try-on network (checked tensor by tensor), DWPose, the parser.

Folder layout (real weights under `models_dir/fashn-vton-1.5`, the smoke model under
`models_dir/smoke/fashn-vton-1.5`; the same code loads both):

    model.safetensors            the network's state dict, no prefix (bf16 in the release)
    config.json                  optional: input_shape, axes_dim, theta, sizes (absent: released)
    dwpose/yolox_l.onnx          person detector
    dwpose/dw-ll_ucoco_384.onnx  whole-body keypoints
    human-parser/                SegFormer (transformers layout), 18 labels; not needed commercially

`load_transformer` refuses a checkpoint whose keys or shapes differ from the configuration,
naming every missing, unexpected or mis-shaped tensor and any size read from the weights
that disagrees with the configuration.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from functions.weave.fashn.network import TryOnConfig, TryOnModel, expected_shapes
from shared.errors import DependencyUnavailable, ProteusError

if TYPE_CHECKING:
    from functions.weave.fashn.pipeline import FashnVTONPipeline

logger = logging.getLogger(__name__)

FOLDER = "fashn-vton-1.5"
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
DETECTOR = "dwpose/yolox_l.onnx"
POSE_MODEL = "dwpose/dw-ll_ucoco_384.onnx"
PARSER_DIR = "human-parser"
SMOKE_MARKER = "fashn-smoke.json"
LIST_LIMIT = 12


class CheckpointError(ProteusError):
    """The weights are there but do not match the architecture: not retryable."""

    status = 500
    retryable = False
    code = "model_load_error"


@dataclass(frozen=True)
class FashnFiles:
    """Where one FASHN model's files are."""

    root: Path

    @property
    def weights(self) -> Path:
        return self.root / WEIGHTS

    @property
    def config(self) -> Path:
        return self.root / CONFIG

    @property
    def detector(self) -> Path:
        return self.root / DETECTOR

    @property
    def pose_model(self) -> Path:
        return self.root / POSE_MODEL

    @property
    def parser(self) -> Path:
        return self.root / PARSER_DIR

    @property
    def is_smoke(self) -> bool:
        return (self.root / SMOKE_MARKER).is_file()

    def missing(self, parser: bool = True) -> list[Path]:
        """Required files that are absent (the parser folder only when it is wanted)."""
        paths = [self.weights, self.detector, self.pose_model]
        if parser:
            paths.append(self.parser / "config.json")
        return [p for p in paths if not p.is_file()]

    def read_config(self) -> TryOnConfig:
        """The configuration file's architecture, or the released one when there is none."""
        if not self.config.is_file():
            return TryOnConfig()
        return TryOnConfig.from_dict(json.loads(self.config.read_text()))


def _listed(names: list[str]) -> str:
    more = f" (+{len(names) - LIST_LIMIT} more)" if len(names) > LIST_LIMIT else ""
    return ", ".join(names[:LIST_LIMIT]) + more


def architecture_of(shapes: dict[str, tuple[int, ...]]) -> dict[str, int]:
    """What the tensor shapes say about the architecture (only what they can say)."""
    found: dict[str, int] = {}
    if (s := shapes.get("t_embedder.mlp.out_layer.weight")) is not None:
        found["hidden_size"] = s[0]
    norm = next((s for k, s in shapes.items() if k.endswith("query_norm.scale")), None)
    if norm is not None and "hidden_size" in found and norm[0]:
        found["head_dim"] = norm[0]
    if (s := shapes.get("x_embedder.proj.weight")) is not None and len(s) == 4:
        found["patch_size"] = s[2]
        found["channels_in"] = (s[1] - 1) // 2
    if (s := shapes.get("y_embedder.weight")) is not None:
        found["n_classes"] = s[0] - 1
    for depth, prefix in (
        ("patch_mixer_depth", "x_patch_mixer"),
        ("double_blocks_depth", "double_blocks"),
        ("single_blocks_depth", "single_blocks"),
    ):
        indices = {int(m.group(1)) for k in shapes if (m := re.match(rf"{prefix}\.(\d+)\.", k))}
        found[depth] = max(indices) + 1 if indices else 0
    return found


def check_state_dict(shapes: dict[str, tuple[int, ...]], config: TryOnConfig, source: str = "checkpoint") -> None:
    """Raise CheckpointError naming every difference between `shapes` and what `config` needs."""
    expected = expected_shapes(config)
    problems = []
    read = architecture_of(shapes)
    wanted = {
        "hidden_size": config.hidden_size,
        "head_dim": config.head_dim,
        "patch_size": config.patch_size,
        "channels_in": config.channels_in,
        "n_classes": config.n_classes,
        "patch_mixer_depth": config.patch_mixer_depth,
        "double_blocks_depth": config.double_blocks_depth,
        "single_blocks_depth": config.single_blocks_depth,
    }
    disagree = [f"{k} {read[k]} (configured {v})" for k, v in wanted.items() if k in read and read[k] != v]
    if disagree:
        problems.append(f"the weights say {', '.join(disagree)}")
    missing = sorted(set(expected) - set(shapes))
    extra = sorted(set(shapes) - set(expected))
    if missing:
        problems.append(f"{len(missing)} missing: {_listed(missing)}")
    if extra:
        problems.append(f"{len(extra)} unexpected: {_listed(extra)}")
    wrong = [
        f"{k} {tuple(shapes[k])} (expected {expected[k]})"
        for k in sorted(set(shapes) & set(expected))
        if tuple(shapes[k]) != expected[k]
    ]
    if wrong:
        problems.append(f"{len(wrong)} with the wrong shape: {_listed(wrong)}")
    if problems:
        raise CheckpointError(
            f"{source} does not match the FASHN VTON network ({len(expected)} tensors "
            f"expected, {len(shapes)} found): " + "; ".join(problems)
        )


def load_transformer(
    files: FashnFiles, device: torch.device, dtype: torch.dtype, config: TryOnConfig | None = None
) -> TryOnModel:
    """The network with every tensor of the checkpoint checked by name and shape."""
    from safetensors.torch import load_file

    if not files.weights.is_file():
        raise DependencyUnavailable(f"FASHN VTON weights not found: {files.weights} (run `make models`)")
    config = config or files.read_config()
    state = load_file(str(files.weights))
    check_state_dict({k: tuple(v.shape) for k, v in state.items()}, config, str(files.weights))
    with torch.device("meta"):
        model = TryOnModel(config)
    model.load_state_dict(state, strict=True, assign=True)
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


def save_transformer(model: TryOnModel, root: Path, dtype: torch.dtype = torch.bfloat16) -> None:
    """Write the state dict (bf16 like the release) and the configuration file."""
    from safetensors.torch import save_file

    root.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}, str(root / WEIGHTS))
    (root / CONFIG).write_text(json.dumps(model.config.to_dict(), indent=2))


def load_fashn_pipeline(
    root: Path,
    *,
    device: torch.device,
    dtype: torch.dtype,
    parser: bool = True,
    safety: tuple[object | None, object | None] = (None, None),
    options: object | None = None,
) -> FashnVTONPipeline:
    """The pipeline from a folder in the layout above. `parser=False` (the commercial setting)
    neither needs nor loads the non-commercial human parser."""
    from functions.weave.fashn.parsing import HumanParser
    from functions.weave.fashn.pipeline import MODEL_NAME, FashnVTONPipeline
    from functions.weave.fashn.pose import DWPose
    from functions.weave.pipeline_common import PipelineOptions

    files = FashnFiles(Path(root))
    absent = files.missing(parser)
    if absent:
        raise DependencyUnavailable(
            f"FASHN VTON files incomplete, missing: {', '.join(map(str, absent))} (run `make models`)"
        )
    transformer = load_transformer(files, device, dtype)
    pose = DWPose.from_files(files.detector, files.pose_model, device=str(device))
    human_parser = HumanParser.from_pretrained(files.parser, device=str(device)) if parser else None
    opts = PipelineOptions(**vars(options)) if options is not None else PipelineOptions()
    if files.is_smoke and opts.num_threads is None:
        opts.num_threads = json.loads((files.root / SMOKE_MARKER).read_text()).get("num_threads")
    checker, extractor = safety
    pipe = FashnVTONPipeline(
        transformer,
        pose,
        human_parser,
        safety_checker=checker,
        feature_extractor=extractor,
        model_name=MODEL_NAME,
        options=opts,
        is_smoke=files.is_smoke,
    )
    logger.info(
        "loaded %s%s on %s as %s (human parser %s)",
        MODEL_NAME,
        " (SMOKE weights)" if files.is_smoke else "",
        device,
        dtype,
        "loaded" if parser else "off: commercial",
    )
    return pipe
