"""The FASHN VTON v1.5 try-on network: a pixel-space MMDiT (FLUX-style), written from the spec.

Two token streams cut from pixels by strided convolutions: the person stream ("img": noisy
image, clothing-agnostic image, person pose; 7 channels) and the garment stream ("txt":
garment image, garment pose; 4 channels). A patch mixer (single-stream blocks on the person
tokens alone), double-stream blocks (separate weights per stream, joint attention over
[garment; person]), single-stream blocks on the joint sequence, then a modulated final layer
on the person tokens, unpatchified to a velocity image. Conditioning vector: a sinusoidal
embedding of 1000 t (cosines first) through an MLP, plus a class embedding (row 0 = null).

`TryOnConfig` holds what the weights cannot say (input_shape, axes_dim, theta) beside the
sizes; `TryOnConfig.tiny()` is the test architecture of the spec. The blocks, embeddings
and RoPE are in layers.py.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import torch
from torch import nn

from functions.weave.fashn.layers import (
    DoubleStreamBlock,
    FinalLayer,
    PatchEmbed,
    SingleStreamBlock,
    TimestepEmbedder,
    grid_ids,
    rope_table,
)


@dataclass(frozen=True)
class TryOnConfig:
    """The network's architecture (defaults: the released model)."""

    input_shape: tuple[int, int] = (864, 576)
    hidden_size: int = 1280
    n_heads: int = 10
    double_blocks_depth: int = 8
    single_blocks_depth: int = 16
    patch_mixer_depth: int = 4
    mlp_ratio: float = 4.0
    channels_in: int = 3
    patch_size: int = 12
    theta: float = 10000.0
    axes_dim: tuple[int, ...] = (16, 56, 56)
    qkv_bias: bool = True
    n_classes: int = 3
    extra: dict = field(default_factory=dict, compare=False)  # unknown keys of a config file

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(int(v) for v in self.input_shape))
        object.__setattr__(self, "axes_dim", tuple(int(v) for v in self.axes_dim))
        if self.hidden_size % self.n_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of n_heads {self.n_heads}")
        if sum(self.axes_dim) != self.head_dim:
            raise ValueError(f"axes_dim {self.axes_dim} must sum to head_dim {self.head_dim}")
        h, w = self.input_shape
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"input_shape {self.input_shape} is not a multiple of patch_size {self.patch_size}")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.n_heads

    @property
    def mlp_hidden(self) -> int:
        return int(self.hidden_size * self.mlp_ratio)

    @property
    def grid(self) -> tuple[int, int]:
        return self.input_shape[0] // self.patch_size, self.input_shape[1] // self.patch_size

    @property
    def patch_dim(self) -> int:
        return self.channels_in * self.patch_size**2

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("extra")
        data["input_shape"], data["axes_dim"] = list(self.input_shape), list(self.axes_dim)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> TryOnConfig:
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(
            **{k: v for k, v in data.items() if k in known}, extra={k: v for k, v in data.items() if k not in known}
        )

    @classmethod
    def tiny(cls) -> TryOnConfig:
        """The spec's test architecture: 48 x 32 pixels, 12 x 8 patches, 591,536 parameters."""
        return cls(
            input_shape=(48, 32),
            hidden_size=64,
            n_heads=2,
            axes_dim=(8, 12, 12),
            patch_size=4,
            double_blocks_depth=2,
            single_blocks_depth=2,
            patch_mixer_depth=2,
        )


# -- building blocks ------------------------------------------------------------------------


class TryOnModel(nn.Module):
    """Velocity of the try-on image: forward(x, t, ca, person_pose, garment, garment_pose,
    category, keep=None) -> (B, 3, H, W) for inputs of exactly `config.input_shape`.

    `keep` (B,) bool: rows where it is False get the null conditioning (all four images
    zero, class 0); x and t are never dropped.
    """

    def __init__(self, config: TryOnConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or TryOnConfig()
        hidden, mlp = c.hidden_size, c.mlp_hidden
        self.t_embedder = TimestepEmbedder(hidden)
        self.y_embedder = nn.Embedding(c.n_classes + 1, hidden)
        self.x_embedder = PatchEmbed(2 * c.channels_in + 1, hidden, c.patch_size)
        self.garment_embedder = PatchEmbed(c.channels_in + 1, hidden, c.patch_size)
        self.x_patch_mixer = nn.ModuleList(
            SingleStreamBlock(hidden, c.n_heads, mlp) for _ in range(c.patch_mixer_depth)
        )
        self.double_blocks = nn.ModuleList(
            DoubleStreamBlock(hidden, c.n_heads, mlp, c.qkv_bias) for _ in range(c.double_blocks_depth)
        )
        self.single_blocks = nn.ModuleList(
            SingleStreamBlock(hidden, c.n_heads, mlp) for _ in range(c.single_blocks_depth)
        )
        self.final_layer = FinalLayer(hidden, c.patch_dim)
        self.register_buffer("patch_mixer_token", torch.zeros(1, 1, c.patch_dim))  # stored, unused
        self._tables: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def dtype(self) -> torch.dtype:
        return self.t_embedder.mlp.in_layer.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.t_embedder.mlp.in_layer.weight.device

    def rope(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The rotary table of one stream's grid (both streams share the ids), cached per device."""
        key = (str(device),)
        if key not in self._tables:
            rows, cols = self.config.grid
            self._tables[key] = rope_table(grid_ids(rows, cols, device), self.config.axes_dim, self.config.theta)
        return self._tables[key]

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        ca: torch.Tensor,
        person_pose: torch.Tensor,
        garment: torch.Tensor,
        garment_pose: torch.Tensor,
        category: torch.Tensor,
        keep: torch.Tensor | None = None,
    ) -> torch.Tensor:
        c = self.config
        if tuple(x.shape[-2:]) != c.input_shape:
            raise ValueError(f"the network takes exactly {c.input_shape} pixels, got {tuple(x.shape[-2:])}")
        if keep is not None:
            conds = [
                torch.where(keep.view(-1, 1, 1, 1), image, torch.zeros_like(image))
                for image in (ca, person_pose, garment, garment_pose)
            ]
            ca, person_pose, garment, garment_pose = conds
            category = torch.where(keep, category, torch.zeros_like(category))
        img = self.x_embedder(torch.cat([x, ca, person_pose], dim=1))
        txt = self.garment_embedder(torch.cat([garment, garment_pose], dim=1))
        vec = self.t_embedder(t) + self.y_embedder(category)
        table = self.rope(x.device)
        joint_table = (torch.cat([table[0], table[0]]), torch.cat([table[1], table[1]]))
        for block in self.x_patch_mixer:
            img = block(img, vec, table)
        for block in self.double_blocks:
            img, txt = block(img, txt, vec, joint_table)
        h = torch.cat([txt, img], dim=1)
        for block in self.single_blocks:
            h = block(h, vec, joint_table)
        out = self.final_layer(h[:, txt.shape[1] :], vec)
        return self.unpatchify(out)

    def unpatchify(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, rows * cols, C * p * p) -> (B, C, rows * p, cols * p), channel index c * p * p + p1 * p + p2."""
        rows, cols = self.config.grid
        p, ch = self.config.patch_size, self.config.channels_in
        b = tokens.shape[0]
        return tokens.view(b, rows, cols, ch, p, p).permute(0, 3, 1, 4, 2, 5).reshape(b, ch, rows * p, cols * p)


def expected_shapes(config: TryOnConfig) -> dict[str, tuple[int, ...]]:
    """Every state-dict tensor of `config` by name: the checkpoint must hold exactly these."""
    with torch.device("meta"):
        model = TryOnModel(config)
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def flops_per_row(config: TryOnConfig) -> float:
    """Floating-point operations of one network call for one batch row (2 per multiply-add)."""
    c = config
    rows, cols = c.grid
    n = rows * cols
    h, m = c.hidden_size, c.mlp_hidden

    def linear(tokens: int, fan_in: int, fan_out: int) -> float:
        return 2.0 * tokens * fan_in * fan_out

    def attn(tokens: int) -> float:
        return 2.0 * 2 * tokens * tokens * h  # q k^T and attention x v

    def single(tokens: int) -> float:
        return linear(tokens, h, 3 * h + m) + linear(tokens, h + m, h) + attn(tokens)

    embed = linear(n, (2 * c.channels_in + 1) * c.patch_size**2, h) + linear(
        n, (c.channels_in + 1) * c.patch_size**2, h
    )
    double = 2 * (linear(n, h, 3 * h) + linear(n, h, h) + linear(n, h, m) + linear(n, m, h)) + attn(2 * n)
    final = linear(n, h, c.patch_dim)
    return (
        embed
        + c.patch_mixer_depth * single(n)
        + c.double_blocks_depth * double
        + c.single_blocks_depth * single(2 * n)
        + final
    )
