"""Fetch the real parsing model (mattmdjaga/segformer_b2_clothes, MIT) into models_dir.

    python -m functions.tailor.download --models-dir models
    # -> models/segformer_b2_clothes/{config.json, model.safetensors, preprocessor_config.json}

Needs the Hugging Face hub; HF_TOKEN in the environment is used when set.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from functions.tailor.loading import HUB_ID, MODEL_NAME, REQUIRED_FILES, missing_files


def download(models_dir: Path, repo_id: str = HUB_ID, revision: str | None = None) -> Path:
    """Download the model files into `models_dir`/segformer_b2_clothes; return that folder."""
    from huggingface_hub import snapshot_download

    folder = Path(models_dir) / MODEL_NAME
    snapshot_download(
        repo_id,
        revision=revision,
        local_dir=folder,
        allow_patterns=list(REQUIRED_FILES),
        token=os.environ.get("HF_TOKEN") or None,
    )
    missing = missing_files(folder)
    if missing:
        raise SystemExit(f"{repo_id} did not provide {', '.join(missing)} (got files in {folder})")
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--repo", default=HUB_ID, help=f"hub id (default {HUB_ID})")
    parser.add_argument("--revision", default=None, help="branch, tag or commit")
    args = parser.parse_args(argv)
    print(download(args.models_dir, args.repo, args.revision))


if __name__ == "__main__":
    main()
