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

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import numpy as np

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
            block = fuse[:, (n - 1 - i) * dim:(n - i) * dim]  # torch.cat(states[::-1])
            weights.append(scale[:, None] * block @ proj.proj.weight.detach().double())
            bias = bias + scale * (block @ proj.proj.bias.detach().double())
        dtype = head.classifier.weight.dtype
        self.weights = nn.ParameterList(nn.Parameter(w.to(dtype), requires_grad=False) for w in weights)
        self.bias = nn.Parameter(bias.to(dtype), requires_grad=False)
        self.classifier = head.classifier

    def forward(self, states: list[torch.Tensor]) -> torch.Tensor:
        size = states[0].shape[2:]
        fused = None
        for state, weight in zip(states, self.weights):
            mixed = torch.einsum("oc,bchw->bohw", weight, state)
            if mixed.shape[2:] != size:
                mixed = F.interpolate(mixed, size=size, mode="bilinear", align_corners=False)
            fused = mixed if fused is None else fused + mixed
        fused = torch.relu(fused + self.bias[None, :, None, None])
        return self.classifier(fused)


def _resize_matrix(out_size: int, in_size: int) -> torch.Tensor:
    """(out, in) matrix equal to 1-D bilinear resizing with align_corners=False."""
    eye = torch.eye(in_size, dtype=torch.float32)[:, None, :]
    return F.interpolate(eye, size=out_size, mode="linear", align_corners=False)[:, 0, :].T


class HumanParser:
    """Runs a SegformerForSemanticSegmentation and returns label maps.

    `name` is what results report ("segformer_b2_clothes" or "smoke").
    """

    def __init__(self, model: nn.Module, *, name: str, size: tuple[int, int] = (512, 512),
                 mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD,
                 dtype: torch.dtype = torch.float32, channels_last: bool = True,
                 fold_decoder: bool = True) -> None:
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
        rows = _resize_matrix(height, logits.shape[1])
        cols = _resize_matrix(width, logits.shape[2])
        wide = torch.matmul(logits, cols.T)  # (18, h, W)
        band = max(1, _BAND_BYTES // (4 * NUM_LABELS * width))
        out = np.empty((height, width), dtype=np.uint8)
        for top in range(0, height, band):
            planes = torch.matmul(rows[top:top + band], wide)  # (18, band, W)
            out[top:top + band] = planes.argmax(dim=0).numpy().astype(np.uint8)
        return out
