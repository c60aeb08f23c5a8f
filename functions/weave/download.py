"""Download the real CatVTON weights into the local layout (`make models`).

    python -m functions.weave.download --models-dir models [--variants maskfree mask]
                                       [--no-safety-checker]

Fetches only the files the weave stage loads (allow_patterns), with huggingface_hub's
progress bars. HF_TOKEN is honoured: zhengchong/CatVTON-MaskFree is gated, so accept its
terms on huggingface.co and export HF_TOKEN first. Re-running skips complete files.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from functions.weave.loading import (
    ATTENTION_DIRS, ATTENTION_PATTERNS, BASE_DIRS, BASE_PATTERNS, HUB_IDS, SAFETY_BASE,
    SAFETY_PATTERNS, VAE_DIR, VAE_PATTERNS, missing_files,
)
from functions.weave.pipeline import VARIANTS


def plan(models_dir: Path, variants: tuple[str, ...], safety_checker: bool = True
         ) -> list[tuple[str, Path, list[str]]]:
    """(repo id, local folder, allow_patterns) for every download, in order."""
    jobs: list[tuple[str, Path, list[str]]] = [(HUB_IDS["vae"], models_dir / VAE_DIR, VAE_PATTERNS)]
    for variant in variants:
        patterns = list(BASE_PATTERNS)
        if safety_checker and BASE_DIRS[variant] == SAFETY_BASE:
            patterns += SAFETY_PATTERNS
        jobs.append((HUB_IDS[variant], models_dir / BASE_DIRS[variant], patterns))
        jobs.append((HUB_IDS[f"attention-{variant}"], models_dir / ATTENTION_DIRS[variant],
                     ATTENTION_PATTERNS))
    if safety_checker and "mask" not in variants:
        jobs.append((HUB_IDS["mask"], models_dir / SAFETY_BASE, SAFETY_PATTERNS))
    return jobs


def download(models_dir: Path, variants: tuple[str, ...] = VARIANTS,
             safety_checker: bool = True) -> list[Path]:
    """Fetch everything in `plan`; returns required files still missing (empty on success)."""
    from huggingface_hub import snapshot_download

    token = os.environ.get("HF_TOKEN") or None
    for repo_id, local_dir, patterns in plan(models_dir, variants, safety_checker):
        print(f"==> {repo_id} -> {local_dir}", flush=True)
        try:
            snapshot_download(repo_id, local_dir=str(local_dir), allow_patterns=patterns,
                              token=token)
        except Exception as exc:  # noqa: BLE001 - say which repo failed and why
            hint = " (gated: accept its terms and set HF_TOKEN)" if "MaskFree" in repo_id else ""
            raise SystemExit(f"download of {repo_id} failed{hint}: {exc}") from exc
    return missing_files(models_dir, variants)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--no-safety-checker", action="store_true")
    args = parser.parse_args(argv)
    missing = download(args.models_dir, tuple(args.variants), not args.no_safety_checker)
    if missing:
        print("still missing after download:\n  " + "\n  ".join(map(str, missing)),
              file=sys.stderr)
        return 1
    print(f"weights complete in {args.models_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
