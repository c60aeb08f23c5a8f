"""CatVTON's attention: self-attention through SDPA with the try-on weights, cross-attention skipped.

- `SkipCrossAttnProcessor` returns its input, so the transformer block computes h + norm2(h)
  at attn2 (the network CatVTON was trained with); `set_catvton_attention(unet)` installs it.
- `sdpa_backend(name)`: restricts SDPA to one backend during a call (PipelineOptions.sdpa_backend).
- `load_attention_weights(unet, path)`: the CatVTON attn1 checkpoint, checked complete;
  `attention_state_dict(unet)` is the reverse (the smoke model writes its checkpoint so).
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor2_0

from functions.weave.weights import ModelLoadError
from shared.errors import DependencyUnavailable

ATTENTION_SUFFIXES = ("to_q.weight", "to_k.weight", "to_v.weight", "to_out.0.weight", "to_out.0.bias")
ATTENTION_KEY_STRIDE = 8  # upstream counted 8 module names per attn1; released keys 0, 8, ...


class SkipCrossAttnProcessor:
    """Cross-attention processor that returns its input hidden states unchanged.

    With the block's residual the transformer block computes h + norm2(h) there: the
    network CatVTON was trained with (not deleting attn2, not returning zeros).
    """

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> torch.Tensor:
        return hidden_states


def sdpa_backend(name: str) -> contextlib.AbstractContextManager:
    """Restrict scaled-dot-product attention to one backend ("auto": PyTorch chooses)."""
    if name == "auto":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    kinds = {
        "flash": SDPBackend.FLASH_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
        "cudnn": SDPBackend.CUDNN_ATTENTION,
        "math": SDPBackend.MATH,
    }
    return sdpa_kernel(kinds[name])


def set_catvton_attention(unet: UNet2DConditionModel) -> None:
    """attn1: SDPA; attn2: `SkipCrossAttnProcessor`."""
    unet.set_attn_processor(
        {
            name: SkipCrossAttnProcessor() if ".attn2." in f".{name}" else AttnProcessor2_0()
            for name in unet.attn_processors
        }
    )


def attn1_modules(unet: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """Every self-attention module, in `named_modules()` order."""
    return [(name, module) for name, module in unet.named_modules() if name.rsplit(".", 1)[-1] == "attn1"]


def attention_state_dict(unet: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The attn1 weights in the released key scheme (`{8k}.to_q.weight`, ...)."""
    state = {}
    for k, (_, module) in enumerate(attn1_modules(unet)):
        own = module.state_dict()
        for suffix in ATTENTION_SUFFIXES:
            state[f"{k * ATTENTION_KEY_STRIDE}.{suffix}"] = own[suffix].detach().clone()
    return state


def load_attention_weights(unet: torch.nn.Module, path: Path | str) -> None:
    """Copy the CatVTON attn1 weights into `unet`; the sorted distinct key indices map onto
    the attn1 modules in order. Fails naming what is missing, extra or mis-shaped."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise DependencyUnavailable(f"attention weights not found: {path}")
    state = load_file(str(path))
    modules = attn1_modules(unet)
    want = len(modules)
    by_index: dict[int, dict[str, torch.Tensor]] = {}
    extra = []
    for key, tensor in state.items():
        match = re.fullmatch(r"(\d+)\.(.+)", key)
        if not match or match.group(2) not in ATTENTION_SUFFIXES:
            extra.append(key)
            continue
        by_index.setdefault(int(match.group(1)), {})[match.group(2)] = tensor
    indices = sorted(by_index)
    expected = [k * ATTENTION_KEY_STRIDE for k in range(want)]
    if set(indices) <= set(expected):
        indices = expected  # so a module missing entirely is named too
    missing = [f"{i}.{s}" for i in indices for s in ATTENTION_SUFFIXES if s not in by_index.get(i, {})]
    found = sum(len(v) for v in by_index.values())
    if missing or extra or len(indices) != want:
        parts = [
            f"{path}: expected {want} attn1 modules x {len(ATTENTION_SUFFIXES)} = "
            f"{want * len(ATTENTION_SUFFIXES)} tensors, found {found}"
        ]
        if len(indices) != want:
            parts.append(f"{len(indices)} module indices ({indices[:4]}...) for {want} modules")
        if missing:
            parts.append(
                f"missing: {', '.join(missing[:10])}{f' (+{len(missing) - 10} more)' if len(missing) > 10 else ''}"
            )
        if extra:
            parts.append(f"unexpected keys: {', '.join(sorted(extra)[:10])}")
        raise ModelLoadError("; ".join(parts))
    with torch.no_grad():
        for index, (name, module) in zip(indices, modules):
            params = dict(module.named_parameters())
            for suffix in ATTENTION_SUFFIXES:
                source, target = by_index[index][suffix], params[suffix]
                if source.shape != target.shape:
                    raise ModelLoadError(
                        f"{path}: {index}.{suffix} has shape "
                        f"{tuple(source.shape)}, {name}.{suffix} needs "
                        f"{tuple(target.shape)}"
                    )
                target.copy_(source.to(target.dtype))
