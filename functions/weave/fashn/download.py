"""Download the real FASHN VTON v1.5 weights into the local layout (`make models`).

    python -m functions.weave.fashn.download --models-dir models [--no-parser]

Fetches `fashn-ai/fashn-vton-1.5` model.safetensors, `fashn-ai/DWPose` (the two ONNX
networks) and, unless --no-parser (the COMMERCIAL setting never loads it), the
`fashn-ai/fashn-human-parser` SegFormer, with huggingface_hub's progress bars, into
`models/fashn-vton-1.5/`. Every file is then checked against its expected size (and the
DWPose files against their published SHA-256); the network's tensors are checked by name
and shape by the loader. Re-running skips files already complete.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from functions.weave.fashn.loading import DETECTOR, FOLDER, PARSER_DIR, POSE_MODEL, WEIGHTS, FashnFiles


@dataclass(frozen=True)
class Remote:
    """One file to fetch: repo, name there, where it goes, and what it must be."""

    repo_id: str
    filename: str
    target: str  # path under models/fashn-vton-1.5
    size: int | None = None  # bytes, when published
    min_size: int = 1  # a floor when the exact size is not published
    sha256: str | None = None


FILES = (
    # 971,813,808 bf16 parameters + the 432-value buffer + the safetensors header: ~1.94 GB.
    Remote("fashn-ai/fashn-vton-1.5", "model.safetensors", WEIGHTS, min_size=1_943_000_000),
    Remote(
        "fashn-ai/DWPose",
        "yolox_l.onnx",
        DETECTOR,
        size=216_746_733,
        sha256="7860ae79de6c89a3c1eb72ae9a2756c0ccfbe04b7791bb5880afabd97855a411",
    ),
    Remote(
        "fashn-ai/DWPose",
        "dw-ll_ucoco_384.onnx",
        POSE_MODEL,
        size=134_399_116,
        sha256="724f4ff2439ed61afb86fb8a1951ec39c6220682803b4a8bd4f598cd913b1843",
    ),
)
PARSER_REPO = "fashn-ai/fashn-human-parser"
PARSER_FILES = ("config.json", "model.safetensors")
PARSER_MIN_SIZE = 200_000_000  # SegFormer-B4 in fp32: ~244 MB


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check(path: Path, item: Remote) -> str | None:
    """What is wrong with a downloaded file, or None."""
    if not path.is_file():
        return f"{path} is missing"
    size = path.stat().st_size
    if item.size is not None and size != item.size:
        return f"{path} is {size} bytes, expected {item.size}"
    if size < item.min_size:
        return f"{path} is {size} bytes, expected at least {item.min_size}"
    if item.sha256 is not None and sha256_of(path) != item.sha256:
        return (
            f"{path} has SHA-256 {sha256_of(path)}, expected {item.sha256} (the published hash of the "
            f"yzd-v/DWPose file; the fashn-ai copy is believed identical)"
        )
    return None


def _fetch(repo_id: str, filename: str, target: Path, token: str | None) -> None:
    import huggingface_hub

    target.parent.mkdir(parents=True, exist_ok=True)
    cached = huggingface_hub.hf_hub_download(repo_id, filename, token=token)  # progress bar
    if not target.is_file() or target.stat().st_size != Path(cached).stat().st_size:
        shutil.copyfile(cached, target)


def download(models_dir: Path, parser: bool = True, token: str | None = None) -> list[str]:
    """Fetch every file; returns the problems found afterwards (empty: complete)."""
    root = Path(models_dir) / FOLDER
    problems = []
    for item in FILES:
        print(f"==> {item.repo_id}/{item.filename} -> {root / item.target}", flush=True)
        if check(root / item.target, item) is not None:
            _fetch(item.repo_id, item.filename, root / item.target, token)
        if (problem := check(root / item.target, item)) is not None:
            problems.append(problem)
    if parser:
        for name in PARSER_FILES:
            print(f"==> {PARSER_REPO}/{name} -> {root / PARSER_DIR / name}", flush=True)
            _fetch(PARSER_REPO, name, root / PARSER_DIR / name, token)
        weights = root / PARSER_DIR / "model.safetensors"
        if problem := check(weights, Remote(PARSER_REPO, "model.safetensors", "", min_size=PARSER_MIN_SIZE)):
            problems.append(problem)
    problems += [f"{p} is missing" for p in FashnFiles(root).missing(parser) if f"{p} is missing" not in problems]
    return problems


def main(argv: list[str] | None = None) -> int:
    import os

    parser = argparse.ArgumentParser(
        prog="python -m functions.weave.fashn.download", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument(
        "--no-parser", action="store_true", help="skip the non-commercial human parser (COMMERCIAL deployments)"
    )
    args = parser.parse_args(argv)
    try:
        problems = download(args.models_dir, not args.no_parser, os.environ.get("HF_TOKEN") or None)
    except Exception as exc:
        print(f"FASHN VTON download failed: {exc}", file=sys.stderr)
        return 1
    if problems:
        print("FASHN VTON weights incomplete:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print(f"FASHN VTON weights complete in {args.models_dir / FOLDER}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
