"""The DCAE model: shapes, numerics, gradients, learning, the reference layout, validation."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import REFERENCE_TSV, TINY_VR, needs_shared, random_model

import dcae
from dcae.imageio import pad_image
from dcae.losses import RateDistortionLoss
from dcae.nn import DictionaryCrossAttention, SwinStage, WindowAttention
from dcae.nn.blocks import DepthwiseConv3x3


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("size", [(1, 1), (64, 64), (64, 192)])
def test_forward_shapes_and_numerics(batch: int, size: tuple[int, int]) -> None:
    model = random_model("tiny").train()
    x = pad_image(torch.rand(batch, 3, *size), model.stride)
    out = model(x)
    height, width = x.shape[-2:]
    assert out["x_hat"].shape == (batch, 3, height, width)
    assert out["likelihoods"]["y"].shape == (batch, model.config.M, height // 16, width // 16)
    assert out["likelihoods"]["z"].shape == (batch, model.config.N, height // 64, width // 64)
    for tensor in [out["x_hat"], *out["likelihoods"].values(), *out["params"].values()]:
        assert torch.isfinite(tensor).all()
    for lik in out["likelihoods"].values():
        assert (lik > 0).all() and (lik <= 1).all()


def test_gradients_reach_every_parameter() -> None:
    model = random_model(TINY_VR).train()
    x = torch.rand(2, 3, 64, 128)
    out = model(x, quality=torch.tensor([0.0, 2.0]))
    loss = RateDistortionLoss(0.01)(out, x)["loss"] + model.aux_loss()
    loss.backward()
    params = dict(model.named_parameters())
    assert [n for n, p in params.items() if p.grad is None] == []
    assert all(torch.isfinite(p.grad).all() for p in params.values())
    # A few ReLUs of a random tiny net may be dead; nearly every tensor must still get signal.
    silent = [n for n, p in params.items() if not torch.any(p.grad != 0)]
    assert len(silent) <= 0.02 * len(params), silent


def test_thirty_steps_lower_the_loss() -> None:
    torch.manual_seed(0)
    model = dcae.build_model("tiny").train()
    x = torch.rand(1, 3, 64, 64)
    criterion = RateDistortionLoss(0.01)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = criterion(model(x, rate_proxy="ste"), x)["loss"]
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5


@needs_shared
@pytest.mark.slow
def test_reference_preset_matches_the_published_state_dict() -> None:
    expected = {}
    for line in REFERENCE_TSV.read_text().splitlines()[1:]:
        name, shape, _dtype, kind = line.split("\t")
        if kind == "param":
            expected[name] = tuple(int(v) for v in shape.split("x"))
    model = dcae.build_model("reference")
    ours = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert ours == expected
    assert len(ours) == 1130
    assert sum(p.numel() for p in model.parameters()) == 119_400_351
    with torch.inference_mode():
        out = model.eval()(torch.rand(1, 3, 64, 64))
    assert torch.isfinite(out["x_hat"]).all()


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.rand(3, 64, 64), "4-D"),
        (torch.rand(1, 1, 64, 64), "3 colour channels"),
        (torch.zeros(1, 3, 64, 64, dtype=torch.uint8), "floating-point"),
        (torch.rand(1, 3, 70, 64), "pad by 58 rows"),
        (torch.full((1, 3, 64, 64), float("nan")), "NaN"),
    ],
)
def test_forward_rejects_bad_input(x: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        random_model("tiny")(x)


def test_quality_is_checked() -> None:
    with pytest.raises(ValueError, match="needs a quality"):
        random_model(TINY_VR)(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="must lie in"):
        random_model(TINY_VR)(torch.rand(1, 3, 64, 64), quality=7)
    with pytest.raises(ValueError, match="single rate"):
        random_model("tiny")(torch.rand(1, 3, 64, 64), quality=1)


def test_config_validation_and_presets() -> None:
    with pytest.raises(ValueError, match="divisible"):
        dcae.DCAEConfig(M=100, num_slices=3)
    with pytest.raises(ValueError, match="unknown model preset"):
        dcae.build_model("huge")
    with pytest.raises(ValueError, match="unknown model config keys"):
        dcae.DCAEConfig.from_dict({"depth": 3})
    cfg = dcae.PRESETS["compact"]
    assert dcae.DCAEConfig.from_dict(cfg.to_dict()) == cfg


def _naive_window_attention(module: WindowAttention, x: torch.Tensor) -> torch.Tensor:
    """The reference formulation: einsum logits, bias, boolean shift mask, softmax."""
    w, heads, hd = module.window, module.heads, module.head_dim
    s = w // 2
    if module.shifted:
        x = torch.roll(x, (-s, -s), (1, 2))
    b, h, wd, c = x.shape
    rows, cols = h // w, wd // w
    win = x.reshape(b, rows, w, cols, w, c).permute(0, 1, 3, 2, 4, 5).reshape(b, rows * cols, w * w, c)
    qkv = module.embedding_layer(win).reshape(b, rows * cols, w * w, 3 * heads, hd).permute(3, 0, 1, 2, 4)
    q, k, v = qkv.chunk(3, dim=0)
    sim = torch.einsum("hbwpc,hbwqc->hbwpq", q, k) * hd**-0.5
    ys, xs = torch.meshgrid(torch.arange(w), torch.arange(w), indexing="ij")
    coords = torch.stack([ys.flatten(), xs.flatten()], -1)
    rel = coords[:, None] - coords[None] + w - 1
    sim = sim + module.relative_position_params[:, rel[..., 0], rel[..., 1]][:, None, None]
    if module.shifted:
        mask = torch.zeros(rows, cols, w, w, w, w, dtype=torch.bool)
        split = w - s
        mask[-1, :, :split, :, split:, :] = True
        mask[-1, :, split:, :, :split, :] = True
        mask[:, -1, :, :split, :, split:] = True
        mask[:, -1, :, split:, :, :split] = True
        sim = sim.masked_fill(mask.reshape(1, 1, rows * cols, w * w, w * w), float("-inf"))
    out = torch.einsum("hbwij,hbwjc->hbwic", sim.softmax(-1), v)
    out = out.permute(1, 2, 3, 0, 4).reshape(b, rows * cols, w * w, c)
    out = module.linear(out).reshape(b, rows, cols, w, w, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, wd, c)
    if module.shifted:
        out = torch.roll(out, (s, s), (1, 2))
    return out


@pytest.mark.parametrize("shifted", [False, True])
@pytest.mark.parametrize("size", [(8, 8), (16, 24), (32, 16)])
def test_window_attention_matches_reference_formulation(shifted: bool, size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    module = WindowAttention(16, 4, 8, shifted)
    torch.nn.init.normal_(module.relative_position_params)
    x = torch.randn(2, *size, 16)
    torch.testing.assert_close(module(x), _naive_window_attention(module, x), atol=1e-5, rtol=1e-4)


def test_dictionary_attention_matches_reference_formulation() -> None:
    torch.manual_seed(0)
    module = DictionaryCrossAttention(24, 32, 4, 16, dense_depth=2, mlp_ratio=2)
    torch.nn.init.uniform_(module.scale, 0.5, 2.0)
    context, dictionary = torch.randn(2, 24, 5, 7), torch.randn(10, 32)
    x = module.x_trans(context.permute(0, 2, 3, 1))
    x = module.msa(module.ln_scale(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1) + module.res_scale_1(x)
    q = module.q_trans(module.lnx(x)).reshape(2, 35, 4, 8).transpose(1, 2)
    entries = module.dict_ln(dictionary)
    k = module.k(entries).reshape(10, 4, 8).transpose(0, 1)
    v = entries.reshape(10, 4, 8).transpose(0, 1)
    probs = (torch.einsum("bhnc,hdc->bhnd", q, k) * module.scale).softmax(-1)
    out = torch.einsum("bhnd,hdc->bhnc", probs, v).transpose(1, 2).reshape(2, 5, 7, 32)
    out = module.linear(out) + module.res_scale_2(x)
    out = module.mlp(module.ln_mlp(out)) + module.res_scale_3(out)
    expected = module.output_trans(out).permute(0, 3, 1, 2)
    torch.testing.assert_close(module(context, dictionary), expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("size", [(1, 1), (5, 9), (17, 33), (40, 8)])
def test_swin_stage_accepts_any_size(size: tuple[int, int]) -> None:
    stage = SwinStage(16, 8, 8, depth=2)
    x = torch.randn(1, 16, *size)
    out = stage(x)
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_swin_stage_padding_is_invisible_for_multiples() -> None:
    """Crop-after-pad must not change results for maps that need no padding."""
    torch.manual_seed(0)
    stage = SwinStage(16, 8, 4, depth=2)
    x = torch.randn(1, 16, 8, 12)
    manual = x.permute(0, 2, 3, 1)
    for layer in stage.layers:
        manual = layer(manual)
    expected = stage.conv(manual.permute(0, 3, 1, 2)) + x
    torch.testing.assert_close(stage(x), expected)


def test_rate_distortion_loss_values() -> None:
    x = torch.full((1, 3, 8, 8), 0.5)
    out = {"x_hat": x + 0.1, "likelihoods": {"y": torch.full((1, 4, 2, 2), 0.5)}}
    result = RateDistortionLoss(0.01)(out, x)
    assert math.isclose(float(result["bpp"]), 16 / 64, rel_tol=1e-6)
    assert math.isclose(float(result["mse"]), 0.01, rel_tol=1e-4)
    assert math.isclose(float(result["loss"]), 0.01 * 255**2 * 0.01 + 0.25, rel_tol=1e-4)
    ssim = RateDistortionLoss(1.0, "ms-ssim")(
        {"x_hat": torch.rand(1, 3, 192, 192), "likelihoods": out["likelihoods"]}, torch.rand(1, 3, 192, 192)
    )
    assert 0 < float(ssim["loss"]) - 16 / (192 * 192) <= 1.0


def test_rate_distortion_loss_weighs_each_image_with_its_own_lambda() -> None:
    x = torch.full((2, 3, 8, 8), 0.5)
    x_hat = x.clone()
    x_hat[1] += 0.2  # image 0 is exact, image 1 has MSE 0.04
    likelihoods = {
        "y": torch.stack([torch.full((4, 2, 2), 0.5), torch.full((4, 2, 2), 0.25)]),  # 16 and 32 bits
        "z": torch.stack([torch.full((2, 1, 1), 0.5), torch.full((2, 1, 1), 1.0)]),  # 2 and 0 bits
    }
    lambdas = torch.tensor([0.001, 0.1])
    result = RateDistortionLoss()({"x_hat": x_hat, "likelihoods": likelihoods}, x, lambdas)
    bpp = torch.tensor([18 / 64, 32 / 64])
    assert math.isclose(float(result["bpp"]), float(bpp.mean()), rel_tol=1e-6)
    expected = ((lambdas * 255**2 * torch.tensor([0.0, 0.04]) + bpp).mean()).item()
    assert math.isclose(float(result["loss"]), expected, rel_tol=1e-4)


def test_bfloat16_autocast_forward() -> None:
    model = random_model("tiny").train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.rand(1, 3, 64, 64))
    assert torch.isfinite(out["x_hat"].float()).all()
    assert torch.isfinite(out["likelihoods"]["y"]).all()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_forward_matches_cpu() -> None:
    model = random_model("tiny")
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        cpu = model(x)["x_hat"]
    # Moved outside inference mode: parameters moved inside it become inference tensors,
    # which the training forward below could not save for backward.
    model.to("cuda")
    with torch.inference_mode():
        gpu = model(x.to("cuda"))["x_hat"].cpu()
    torch.testing.assert_close(cpu, gpu, atol=1e-3, rtol=1e-3)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model.train()(x.cuda())
    assert torch.isfinite(out["x_hat"].float()).all()


def test_depthwise_convolution_in_float64_matches_the_library_convolution() -> None:
    torch.manual_seed(0)
    layer = DepthwiseConv3x3(6).double()
    x = torch.randn(2, 6, 7, 9, dtype=torch.float64)
    expected = torch.nn.functional.conv2d(x, layer.weight, layer.bias, padding=1, groups=6)
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-12)
    assert list(dict(layer.named_parameters())) == ["weight", "bias"]  # reference names kept


def test_the_forward_pass_runs_in_float64_and_agrees_with_float32() -> None:
    """The reference maths can be checked in double precision (the likelihoods follow the input's
    precision instead of being forced to float32)."""
    import copy

    model = random_model(TINY_VR, seed=4)
    x = torch.rand(2, 3, 64, 128, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        single = model(x, quality=torch.tensor([0.5, 1.5]))
        double = copy.deepcopy(model).double()(x.double(), quality=torch.tensor([0.5, 1.5]))
    assert double["x_hat"].dtype == double["likelihoods"]["y"].dtype == torch.float64
    # A rounding decision may flip where float32 sits on a half-integer; everything else agrees.
    for key in ("x_hat", "y_hat"):
        a = double["x_hat"] if key == "x_hat" else double["params"]["y_hat"]
        b = single["x_hat"] if key == "x_hat" else single["params"]["y_hat"]
        assert ((a.float() - b).abs() < 1e-4).float().mean() > 0.99
    torch.testing.assert_close(double["likelihoods"]["z"].float(), single["likelihoods"]["z"], rtol=1e-4, atol=1e-6)


def test_in_place_gain_gives_the_same_latent_and_reuses_the_features() -> None:
    """The encoder scales the analysis features in place (one latent-sized buffer less for a
    large image); the values must be exactly those of the ordinary gain, for every quality form."""
    model = random_model(TINY_VR).eval()
    features = torch.randn(2, model.config.M, 4, 6, generator=torch.Generator().manual_seed(1))
    quality_map = torch.tensor([0.0, 1.5, 2.0]).repeat(2, 1, 4, 2)
    for quality in (1.25, torch.tensor([0.0, 2.0]), quality_map):
        expected = model.gain(features, quality)
        copy = features.clone()
        scaled = model.gain(copy, quality, in_place=True)
        assert scaled.data_ptr() == copy.data_ptr()
        assert torch.equal(scaled, expected)
