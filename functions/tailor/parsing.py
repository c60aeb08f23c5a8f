"""HumanParser: SegFormer human parsing, one label per pixel at the image's own size.

Pre-processing follows the model's image processor: resize to 512 x 512 (bilinear),
scale to [0, 1], normalise with ImageNet mean/std. Logits (1/4 of the input size) are
upsampled bilinearly to the image size, then argmax; the upsampling is done as two small
matrix products per band of rows, so a large photo never holds 18 full-size planes.

Speed: SegFormer's decode head projects every stage to 768 channels, upsamples them to
1/4 scale and fuses them with a 1x1 convolution; that fusion is most of the work on a
CPU. 1x1 convolutions, batch norm (eval) and bilinear upsampling are all linear, so
`FoldedDecodeHead` folds projection, fusion and batch norm into one small matrix per
stage applied BEFORE upsampling: the same function, about 40x less decoder work.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NUM_LABELS = 18
_BAND_BYTES = 64 * 2**20  # upsampled logits held at once


class FoldedDecodeHead(nn.Module):
    """A SegformerDecodeHead (eval mode) with its linear layers folded per stage."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        fuse = head.linear_fuse.weight.detach().flatten(1).double()  # (D, n*D), stages reversed
        bn = head.batch_norm
        scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
        bias = bn.bias.detach().double() - bn.running_mean.double() * scale
        n, dim = len(head.linear_projections), fuse.shape[0]
        weights = []
        for i, proj in enumerate(head.linear_projections):
            block = fuse[:, (n - 1 - i) * dim : (n - i) * dim]  # torch.cat(states[::-1])
            weights.append(scale[:, None] * block @ proj.proj.weight.detach().double())
            bias = bias + scale * (block @ proj.proj.bias.detach().double())
        dtype = head.classifier.weight.dtype
        self.weights = nn.ParameterList(nn.Parameter(w.to(dtype), requires_grad=False) for w in weights)
        self.bias = nn.Parameter(bias.to(dtype), requires_grad=False)
        self.classifier = head.classifier

    def forward(self, states: list[torch.Tensor]) -> torch.Tensor:
        """Logits (batch, labels, h, w) from the encoder's stage outputs (NCHW)."""
        size = states[0].shape[2:]
        fused: torch.Tensor | None = None
        for state, weight in zip(states, self.weights):
            # Channel mixing as one matmul over channels-last memory; the result stays
            # channels-last, which is also the faster layout for bilinear upsampling.
            mixed = (state.permute(0, 2, 3, 1) @ weight.T).permute(0, 3, 1, 2)
            if mixed.shape[2:] != size:
                mixed = F.interpolate(mixed, size=size, mode="bilinear", align_corners=False)
            fused = mixed if fused is None else fused.add_(mixed)
        assert fused is not None
        fused.add_(self.bias[None, :, None, None]).relu_()
        weight = self.classifier.weight.flatten(1)
        logits = fused.permute(0, 2, 3, 1) @ weight.T + self.classifier.bias
        return logits.permute(0, 3, 1, 2)


def _taps(out_size: int, in_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices and weight of 1-D bilinear resizing (align_corners=False, as torch)."""
    src = ((torch.arange(out_size, dtype=torch.float32) + 0.5) * (in_size / out_size) - 0.5).clamp(min=0)
    low = src.long().clamp(max=in_size - 1)
    high = (low + 1).clamp(max=in_size - 1)
    return low, high, (src - low).clamp(0, 1)


class HumanParser:
    """Runs a SegformerForSemanticSegmentation and returns label maps.

    `name` is what results report ("segformer_b2_clothes" or "smoke").
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        name: str,
        size: tuple[int, int] = (512, 512),
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
        dtype: torch.dtype = torch.float32,
        channels_last: bool = True,
        fold_decoder: bool = True,
    ) -> None:
        num_labels = int(model.config.num_labels)
        if num_labels != NUM_LABELS:
            raise ValueError(f"expected a {NUM_LABELS}-label parsing model, got {num_labels} labels")
        self.model = model.eval().to(dtype)
        self.name = name
        self.size = size  # (height, width)
        self.dtype = dtype
        self.channels_last = channels_last
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.head: nn.Module | None = None
        if fold_decoder and getattr(model.config, "reshape_last_stage", True):
            self.head = FoldedDecodeHead(model.decode_head).eval()
        if channels_last:
            self.model.to(memory_format=torch.channels_last)

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """(1, 3, H, W) normalised input at the model's size."""
        height, width = self.size
        resized = image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
        pixels = torch.from_numpy(np.asarray(resized, dtype=np.float32).copy())
        pixels = pixels.permute(2, 0, 1)[None] / 255.0
        pixels = ((pixels - self.mean) / self.std).to(self.dtype)
        if self.channels_last:
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        return pixels

    @torch.inference_mode()
    def logits(self, image: Image.Image) -> torch.Tensor:
        """Float32 logits (1, 18, h/4, w/4) at the model's resolution."""
        pixels = self.preprocess(image)
        if self.head is None:
            return self.model(pixel_values=pixels).logits.float()
        states, hidden = [], pixels
        for stage in self.model.segformer.stages:
            hidden = stage(hidden)
            states.append(hidden)
        return self.head(states).float()

    @torch.inference_mode()
    def parse(self, image: Image.Image) -> np.ndarray:
        """uint8 label map (height, width) at the image's size; labels as in geometry.LABELS."""
        logits = self.logits(image)[0]  # (18, h, w)
        width, height = image.size
        left, right, wx = _taps(width, logits.shape[2])
        wide = torch.lerp(logits[:, :, left], logits[:, :, right], wx)  # (18, h, W)
        top, bottom, wy = _taps(height, logits.shape[1])
        band = max(1, _BAND_BYTES // (4 * NUM_LABELS * width))
        out = np.empty((height, width), dtype=np.uint8)
        for start in range(0, height, band):
            rows = slice(start, start + band)
            planes = torch.lerp(wide[:, top[rows]], wide[:, bottom[rows]], wy[rows, None])
            out[rows] = planes.argmax(dim=0).numpy().astype(np.uint8)
        return out
