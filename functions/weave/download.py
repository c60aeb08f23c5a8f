"""Download the real CatVTON weights into the local layout (`make models`).

    python -m functions.weave.download --models-dir models [--variants maskfree mask]
                                       [--no-safety-checker]

Fetches only the files the weave stage loads (allow_patterns; per folder the best weights
file the repo has), with huggingface_hub's progress bars. HF_TOKEN is honoured:
zhengchong/CatVTON-MaskFree is gated, so accept its terms on huggingface.co and export
HF_TOKEN first. Re-running skips files already complete.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from functions.weave.weights import fetch, hub_fetches, missing_files
from shared.contracts.tryon import VARIANTS


def download(models_dir: Path, variants: tuple[str, ...] = VARIANTS, safety_checker: bool = True) -> list[Path]:
    """Fetch every repo the variants need; returns required files still missing."""
    token = os.environ.get("HF_TOKEN") or None
    for item in hub_fetches(variants, safety_checker):
        local_dir = models_dir / item.folder
        print(f"==> {item.repo_id} -> {local_dir}", flush=True)
        try:
            fetch(item, local_dir=local_dir, token=token)
        except Exception as exc:  # say which repo failed and why
            gated = " (gated: accept its terms and set HF_TOKEN)" if "MaskFree" in item.repo_id else ""
            raise SystemExit(f"download of {item.repo_id} failed{gated}: {exc}") from exc
    return missing_files(models_dir, variants)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m functions.weave.download", description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--no-safety-checker", action="store_true")
    args = parser.parse_args(argv)
    missing = download(args.models_dir, tuple(args.variants), not args.no_safety_checker)
    if missing:
        print("still missing after download:\n  " + "\n  ".join(map(str, missing)), file=sys.stderr)
        return 1
    print(f"weights complete in {args.models_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
