"""The MMDiT against the spec: parameter counts, key scheme, FLOPs, null conditioning, RoPE, time embedding."""

from __future__ import annotations

import math

import torch

from functions.weave.fashn.layers import apply_rope, grid_ids, rope_table, timestep_embedding
from functions.weave.fashn.network import TryOnConfig, TryOnModel, expected_shapes, flops_per_row
from functions.weave.fashn.smoke import tiny_transformer


def test_released_architecture_has_the_published_tensors_and_parameters() -> None:
    shapes = expected_shapes(TryOnConfig())
    assert len(shapes) == 366
    params = sum(math.prod(s) for k, s in shapes.items() if k != "patch_mixer_token")
    assert params == 971_813_808
    assert shapes["patch_mixer_token"] == (1, 1, 432)
    assert shapes["x_embedder.proj.weight"] == (1280, 7, 12, 12)
    assert shapes["garment_embedder.proj.weight"] == (1280, 4, 12, 12)
    assert shapes["single_blocks.15.linear1.weight"] == (8960, 1280)
    assert shapes["double_blocks.7.txt_mlp.2.weight"] == (1280, 5120)
    assert shapes["final_layer.adaLN_modulation.1.weight"] == (2560, 1280)
    assert shapes["y_embedder.weight"] == (4, 1280)


def test_tiny_architecture_matches_the_spec() -> None:
    model = TryOnModel(TryOnConfig.tiny())
    assert sum(p.numel() for p in model.parameters()) == 591_536
    assert len(model.state_dict()) == 94


def test_flops_per_image_at_30_guided_steps_is_792_tflop() -> None:
    assert round(flops_per_row(TryOnConfig()) * 2 * 30 / 1e12) == 792


def test_timestep_embedding_is_cosines_first_of_1000_t() -> None:
    t = torch.tensor([0.25])
    emb = timestep_embedding(t)
    freqs = torch.exp(-math.log(10000) * torch.arange(128) / 128)
    assert torch.allclose(emb[0, :128], torch.cos(250 * freqs), atol=1e-5)
    assert torch.allclose(emb[0, 128:], torch.sin(250 * freqs), atol=1e-5)


def test_rope_rotates_adjacent_pairs_axis_by_axis() -> None:
    ids = grid_ids(3, 2)
    assert ids.tolist()[:3] == [[0, 0, 0], [0, 0, 1], [0, 1, 0]]
    cos, sin = rope_table(ids, (2, 2, 2), theta=10000.0)
    x = torch.arange(6, dtype=torch.float32).repeat(6, 1)[None, None]  # (1, 1, 6 tokens, 6 dims)
    out = apply_rope(x, (cos, sin))[0, 0]
    # token 3 is (row 1, col 1): axis 0 pair unrotated, rows and cols pairs by 1 radian.
    assert torch.allclose(out[3, :2], x[0, 0, 3, :2])
    a, b = 2.0, 3.0
    assert torch.allclose(
        out[3, 2:4], torch.tensor([a * math.cos(1) - b * math.sin(1), a * math.sin(1) + b * math.cos(1)])
    )


def test_null_rows_zero_the_four_images_and_the_class_but_keep_x_and_t() -> None:
    model = tiny_transformer(0).eval()
    g = torch.Generator().manual_seed(0)
    x, ca, garment = (torch.randn(1, 3, 48, 32, generator=g) for _ in range(3))
    pp, gp = (torch.randn(1, 1, 48, 32, generator=g) for _ in range(2))
    t, cat = torch.tensor([0.3]), torch.tensor([2])
    with torch.no_grad():
        dropped = model(x, t, ca, pp, garment, gp, cat, keep=torch.tensor([False]))
        zeros = model(x, t, *(torch.zeros_like(v) for v in (ca, pp, garment, gp)), torch.tensor([0]))
        minus_one = model(x, t, *(-torch.ones_like(v) for v in (ca, pp, garment, gp)), torch.tensor([0]))
        kept = model(x, t, ca, pp, garment, gp, cat, keep=torch.tensor([True]))
        plain = model(x, t, ca, pp, garment, gp, cat)
    assert torch.equal(dropped, zeros) and torch.equal(kept, plain)
    assert not torch.allclose(dropped, minus_one) and not torch.allclose(dropped, kept)


def test_output_depends_on_position_so_rows_and_columns_are_not_swapped() -> None:
    model = tiny_transformer(1).eval()
    x = torch.randn(1, 3, 48, 32)
    cond = [torch.randn(1, 3, 48, 32), torch.randn(1, 1, 48, 32), torch.randn(1, 3, 48, 32), torch.randn(1, 1, 48, 32)]
    with torch.no_grad():
        v = model(x, torch.tensor([0.5]), *cond, torch.tensor([1]))
    assert v.shape == (1, 3, 48, 32)
    try:
        model(torch.randn(1, 3, 32, 48), torch.tensor([0.5]), *cond, torch.tensor([1]))
    except ValueError as exc:
        assert "(48, 32)" in str(exc)
    else:
        raise AssertionError("a wrong input size must be refused")
