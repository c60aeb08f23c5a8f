"""The FASHN MMDiT's layers: time embedding, RoPE over the patch grid, RMS/QK norms,
modulation, joint attention, the double- and single-stream blocks and the final layer
(network.py assembles them into `TryOnModel`)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LN_EPS = 1e-6
RMS_EPS = 1e-6
TIME_DIM = 256
TIME_MAX_PERIOD = 10000.0
TIME_FACTOR = 1000.0


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
