"""The safety check every weave model shares: a Stable Diffusion safety checker on the results."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

logger = logging.getLogger(__name__)

Verdict = tuple[bool | None, str]  # (nsfw, label): label is off / unavailable / passed / flagged


def safety_verdicts(
    checker: Any,
    extractor: Any,
    device: torch.device,
    images: Sequence[Image.Image],
    wanted: Sequence[bool],
    names: Sequence[str] = (),
) -> list[Verdict]:
    """One verdict per image; images whose `wanted` is False are not checked ("off")."""
    chosen = [i for i, w in enumerate(wanted) if w]
    verdicts: list[Verdict] = [(None, "off")] * len(images)
    if not chosen:
        return verdicts
    if checker is None or extractor is None:
        logger.warning("safety check requested but no safety checker is loaded")
        for i in chosen:
            verdicts[i] = (None, "unavailable")
        return verdicts
    checker_dtype = next(checker.parameters()).dtype
    clip = extractor([images[i] for i in chosen], return_tensors="pt")
    clip_input = clip.pixel_values.to(device, checker_dtype)
    dummy = np.zeros((len(chosen), 1, 1, 3), dtype=np.float32)  # the checker blacks these
    _, flags = checker(clip_input=clip_input, images=dummy)
    for i, flag in zip(chosen, flags):
        verdicts[i] = (bool(flag), "flagged" if flag else "passed")
        if flag:
            logger.warning("safety checker flagged %s", names[i] if i < len(names) else f"image {i}")
    return verdicts
