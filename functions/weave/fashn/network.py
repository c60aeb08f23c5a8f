"""The FASHN VTON v1.5 try-on network: a pixel-space MMDiT (FLUX-style), written from the spec.

Two token streams cut from pixels by strided convolutions: the person stream ("img": noisy
image, clothing-agnostic image, person pose; 7 channels) and the garment stream ("txt":
garment image, garment pose; 4 channels). A patch mixer (single-stream blocks on the person
tokens alone), double-stream blocks (separate weights per stream, joint attention over
[garment; person]), single-stream blocks on the joint sequence, then a modulated final layer
on the person tokens, unpatchified to a velocity image. Conditioning vector: a sinusoidal
embedding of 1000 t (cosines first) through an MLP, plus a class embedding (row 0 = null).

`TryOnConfig` holds what the weights cannot say (input_shape, axes_dim, theta) beside the
sizes; `TryOnConfig.tiny()` is the test architecture of the spec.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn.functional as F
from torch import nn

LN_EPS = 1e-6
RMS_EPS = 1e-6
TIME_DIM = 256
TIME_MAX_PERIOD = 10000.0
TIME_FACTOR = 1000.0


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


def timestep_embedding(t: torch.Tensor, dim: int = TIME_DIM) -> torch.Tensor:
    """[cos(1000 t f_k), sin(1000 t f_k)] with f_k = 10000^(-k / (dim/2)): float32 math on
    1000 t computed in t's dtype (bf16 rounds twice), cast back to t's dtype."""
    half = dim // 2
    freqs = torch.exp(-math.log(TIME_MAX_PERIOD) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = (t * TIME_FACTOR)[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1).to(t.dtype)


def rope_table(ids: torch.Tensor, axes_dim: tuple[int, ...], theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin (L, head_dim / 2), float32, of the interleaved rotary pairs of each axis in order."""
    angles = []
    for axis, dim in enumerate(axes_dim):
        omega = 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float64, device=ids.device) / dim)
        angles.append(ids[:, axis].double()[:, None] * omega[None])
    angle = torch.cat(angles, dim=-1)
    return torch.cos(angle).float(), torch.sin(angle).float()


def apply_rope(x: torch.Tensor, table: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Rotate adjacent pairs (2j, 2j+1) of x (B, H, L, D) in float32: (a, b) -> (a cos - b sin, a sin + b cos)."""
    cos, sin = table
    pairs = x.float().reshape(*x.shape[:-1], -1, 2)
    a, b = pairs[..., 0], pairs[..., 1]
    out = torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1)
    return out.reshape(x.shape).to(x.dtype)


def grid_ids(rows: int, cols: int, device: torch.device | None = None) -> torch.Tensor:
    """Position ids (0, row, col) of a rows x cols grid in row-major order, float32 (L, 3)."""
    r, c = torch.meshgrid(torch.arange(rows, device=device), torch.arange(cols, device=device), indexing="ij")
    return torch.stack([torch.zeros_like(r), r, c], dim=-1).reshape(-1, 3).float()


class RMSNorm(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + RMS_EPS)
        return normed.to(x.dtype) * self.scale


class QKNorm(nn.Module):
    def __init__(self, head_dim: int) -> None:
        super().__init__()
        self.query_norm = RMSNorm(head_dim)
        self.key_norm = RMSNorm(head_dim)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.query_norm(q).to(v.dtype), self.key_norm(k).to(v.dtype)


class Modulation(nn.Module):
    """Linear(SiLU(vec)) split into `chunks` (shift, scale, gate, ...), broadcast over tokens."""

    def __init__(self, hidden: int, chunks: int) -> None:
        super().__init__()
        self.chunks = chunks
        self.lin = nn.Linear(hidden, chunks * hidden)

    def forward(self, vec: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.lin(F.silu(vec))[:, None, :].chunk(self.chunks, dim=-1)


def _layer_norm(x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, (x.shape[-1],), eps=LN_EPS)


def _heads(qkv: torch.Tensor, n_heads: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, L, 3 * H * D) laid out [q | k | v], head-major -> three (B, H, L, D)."""
    b, length, _ = qkv.shape
    q, k, v = qkv.view(b, length, 3, n_heads, -1).permute(2, 0, 3, 1, 4)
    return q, k, v


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, table: tuple[torch.Tensor, torch.Tensor]
) -> torch.Tensor:
    """RoPE on q and k, plain scaled dot-product attention, heads joined: (B, L, H * D)."""
    out = F.scaled_dot_product_attention(apply_rope(q, table), apply_rope(k, table), v)
    b, h, length, d = out.shape
    return out.transpose(1, 2).reshape(b, length, h * d)


class MLPEmbedder(nn.Module):
    def __init__(self, in_dim: int, hidden: int) -> None:
        super().__init__()
        self.in_layer = nn.Linear(in_dim, hidden)
        self.out_layer = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_layer(F.silu(self.in_layer(x)))


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.mlp = MLPEmbedder(TIME_DIM, hidden)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_embedding(t).to(self.mlp.in_layer.weight.dtype))


class PatchEmbed(nn.Module):
    """Conv2d(channels -> hidden, kernel = stride = patch) then tokens in row-major order."""

    def __init__(self, channels: int, hidden: int, patch: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(channels, hidden, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class SelfAttention(nn.Module):
    def __init__(self, hidden: int, n_heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(hidden, 3 * hidden, bias=qkv_bias)
        self.norm = QKNorm(hidden // n_heads)
        self.proj = nn.Linear(hidden, hidden)


class DoubleStreamBlock(nn.Module):
    """Person (img) and garment (txt) streams with their own weights, one joint attention."""

    def __init__(self, hidden: int, n_heads: int, mlp_hidden: int, qkv_bias: bool) -> None:
        super().__init__()
        self.n_heads = n_heads
        for stream in ("img", "txt"):
            setattr(self, f"{stream}_mod", Modulation(hidden, 6))
            setattr(self, f"{stream}_attn", SelfAttention(hidden, n_heads, qkv_bias))
            setattr(
                self,
                f"{stream}_mlp",
                nn.Sequential(
                    nn.Linear(hidden, mlp_hidden), nn.GELU(approximate="tanh"), nn.Linear(mlp_hidden, hidden)
                ),
            )

    def _qkv(
        self, stream: str, h: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        attn: SelfAttention = getattr(self, f"{stream}_attn")
        q, k, v = _heads(attn.qkv((1 + scale) * _layer_norm(h) + shift), self.n_heads)
        q, k = attn.norm(q, k, v)
        return q, k, v

    def forward(
        self, img: torch.Tensor, txt: torch.Tensor, vec: torch.Tensor, table: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        img_mod, txt_mod = self.img_mod(vec), self.txt_mod(vec)
        img_q, img_k, img_v = self._qkv("img", img, img_mod[0], img_mod[1])
        txt_q, txt_k, txt_v = self._qkv("txt", txt, txt_mod[0], txt_mod[1])
        # Joint attention in token order [garment; person].
        joint = attention(
            torch.cat([txt_q, img_q], dim=2), torch.cat([txt_k, img_k], dim=2), torch.cat([txt_v, img_v], dim=2), table
        )
        txt_out, img_out = joint[:, : txt.shape[1]], joint[:, txt.shape[1] :]
        outs = []
        for stream, h, out, mod in (("img", img, img_out, img_mod), ("txt", txt, txt_out, txt_mod)):
            shift1, scale1, gate1, shift2, scale2, gate2 = mod
            h = h + gate1 * getattr(self, f"{stream}_attn").proj(out)
            h = h + gate2 * getattr(self, f"{stream}_mlp")((1 + scale2) * _layer_norm(h) + shift2)
            outs.append(h)
        return outs[0], outs[1]


class SingleStreamBlock(nn.Module):
    """One sequence: qkv and the MLP input from one Linear, attention and GELU(MLP) joined by another."""

    def __init__(self, hidden: int, n_heads: int, mlp_hidden: int) -> None:
        super().__init__()
        self.hidden, self.n_heads, self.mlp_hidden = hidden, n_heads, mlp_hidden
        self.linear1 = nn.Linear(hidden, 3 * hidden + mlp_hidden)
        self.linear2 = nn.Linear(hidden + mlp_hidden, hidden)
        self.norm = QKNorm(hidden // n_heads)
        self.modulation = Modulation(hidden, 3)

    def forward(self, h: torch.Tensor, vec: torch.Tensor, table: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        shift, scale, gate = self.modulation(vec)
        qkv, mlp = self.linear1((1 + scale) * _layer_norm(h) + shift).split([3 * self.hidden, self.mlp_hidden], dim=-1)
        q, k, v = _heads(qkv, self.n_heads)
        q, k = self.norm(q, k, v)
        out = attention(q, k, v, table)
        return h + gate * self.linear2(torch.cat([out, F.gelu(mlp, approximate="tanh")], dim=-1))


class FinalLayer(nn.Module):
    def __init__(self, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))
        self.linear = nn.Linear(hidden, out_dim)

    def forward(self, h: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(vec)[:, None, :].chunk(2, dim=-1)
        return self.linear((1 + scale) * _layer_norm(h) + shift)


# -- the network ------------------------------------------------------------------------------


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
