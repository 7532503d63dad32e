"""The DCAE model: analysis/synthesis transforms, hyperprior and dictionary-conditioned slices."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from .config import DCAEConfig, resolve_config
from .entropy import FactorizedPrior, GaussianConditional, quantize
from .nn import DictionaryCrossAttention, GainUnits, ResidualDown, ResidualUp, SwinStage, conv, deconv


class ContextNetwork(nn.Sequential):
    """conv3x3, GELU, conv3x3, GELU, conv3x3 (reference indices 0, 2, 4 hold the convs).

    The mean, scale and residual-prediction networks of a slice all read the same support
    features first; :attr:`first` and :meth:`rest` let a caller split off that first layer.
    """

    def __init__(self, in_ch: int, hidden: tuple[int, int], out_ch: int) -> None:
        super().__init__(
            conv(in_ch, hidden[0], 3, 1),
            nn.GELU(),
            conv(hidden[0], hidden[1], 3, 1),
            nn.GELU(),
            conv(hidden[1], out_ch, 3, 1),
        )

    @property
    def first(self) -> nn.Conv2d:
        """The first 3x3 convolution."""
        return self[0]

    def rest(self, first_response: torch.Tensor) -> torch.Tensor:
        """Everything after the first convolution, given its output."""
        for layer in list(self)[1:]:
            first_response = layer(first_response)
        return first_response


@dataclass
class SliceContext:
    """What the entropy model predicts for one slice of y before it is coded."""

    mean: torch.Tensor
    scale: torch.Tensor
    # What refine_slice needs of the context: the support features (the model itself), or the
    # residual-prediction network's first-layer response to them (dcae.entropy_parameters).
    support: torch.Tensor


class EntropyParameters(Protocol):
    """What computes the entropy parameters for the slice loop and the latent coder: the model
    itself, or its networks evaluated in chunks and another precision (``dcae.entropy_parameters``)."""

    config: DCAEConfig

    def hyper_features(self, z_hat: torch.Tensor) -> torch.Tensor: ...

    def slice_context(self, index: int, hyper: torch.Tensor, previous: list[torch.Tensor]) -> SliceContext: ...

    def refine_slice(self, index: int, context: SliceContext, y_hat_slice: torch.Tensor) -> torch.Tensor: ...


# Given a slice's index, its latent (None when decoding) and its context, the quantised slice
# (before the latent residual prediction): rounded, noisy, decoded from a stream, or a preview.
SliceQuantizer = Callable[[int, "torch.Tensor | None", SliceContext], torch.Tensor]


def run_slices(
    params: EntropyParameters, hyper: torch.Tensor, y: "torch.Tensor | None", quantize_slice: SliceQuantizer
) -> torch.Tensor:
    """The slice loop of the entropy model, the one place it is written.

    Slice by slice: predict the context from the hyper features and the earlier quantised
    slices, let ``quantize_slice`` quantise the slice (training adds noise or rounds with a
    straight-through gradient; the encoder rounds and codes; the decoder reads the stream; a
    preview takes the mean), then add the latent residual prediction. Training, encoding,
    decoding, previews and latent optimisation all run through here, which keeps the encoder's
    and decoder's predictions in step. Returns the quantised y.
    """
    slices = params.config.num_slices
    y_slices = y.chunk(slices, dim=1) if y is not None else [None] * slices
    y_hat_slices: list[torch.Tensor] = []
    for index, y_slice in enumerate(y_slices):
        ctx = params.slice_context(index, hyper, y_hat_slices)
        y_hat_slices.append(params.refine_slice(index, ctx, quantize_slice(index, y_slice, ctx)))
        del ctx  # a slice's parameters, as large as the slice: gone before the next slice's are made
    return torch.cat(y_hat_slices, dim=1)


def validate_image_batch(x: Any, stride: int, check_values: bool = True) -> None:
    """Raise ``ValueError`` (or ``TypeError``) unless ``x`` is a finite (B, 3, H, W) float batch
    whose sides are multiples of ``stride``. ``check_values=False`` checks only the type and
    shape (reading the values of a tensor on an accelerator waits for it)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"expected a 4-D (B, 3, H, W) tensor, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"expected a floating-point tensor with values in [0, 1], got dtype {x.dtype}")
    if x.shape[1] != 3:
        raise ValueError(f"expected 3 colour channels, got {x.shape[1]} (shape {tuple(x.shape)})")
    height, width = x.shape[-2:]
    if height == 0 or width == 0 or x.shape[0] == 0:
        raise ValueError(f"empty image batch of shape {tuple(x.shape)}")
    if height % stride or width % stride:
        pad_h, pad_w = -height % stride, -width % stride
        raise ValueError(
            f"image sides must be multiples of {stride}, got {height}x{width}: pad by {pad_h} rows and "
            f"{pad_w} columns (to {height + pad_h}x{width + pad_w}), e.g. with dcae.imageio.pad_image"
        )
    if check_values and not torch.isfinite(x).all():
        raise ValueError("input contains NaN or infinite values")


class DCAE(nn.Module):
    """Learned image compression with a dictionary-based cross-attention entropy model.

    ``g_a`` maps an image to the latent y at 1/16 resolution, ``h_a`` maps y to the hyper-latent
    z at 1/64. z is coded with a factorised prior; ``h_z_s1``/``h_z_s2`` turn it into scale and
    mean features. y is coded in ``num_slices`` channel slices: each slice's Gaussian mean and
    scale come from the hyper features, earlier slices, and what a cross-attention reads from the
    learnable dictionary ``dt``. ``g_s`` reconstructs the image from the quantised latent.

    With ``num_rate_points > 0`` the model carries gain units and one set of weights covers a
    range of rates, selected by ``quality`` in [0, num_rate_points - 1].
    """

    # Everything between the decoded integers and a probability table: what a decoder must
    # compute exactly as the encoder did (dcae.entropy_parameters evaluates these).
    ENTROPY_PARAMETER_PARTS = (
        "h_z_s1",
        "h_z_s2",
        "dt",
        "dt_cross_attention",
        "cc_mean_transforms",
        "cc_scale_transforms",
        "lrp_transforms",
    )

    # What ``dcae train --train-parts`` trains while the rest stays frozen (names of modules or
    # parameters). The analysis transform is never among them: a part trains on cached latents.
    TRAINABLE_PARTS = {
        "synthesis": ("g_s", "gain_units.log_inverse_gain"),
        "entropy": ("h_a", "entropy_bottleneck", *ENTROPY_PARAMETER_PARTS, "gain_units"),
    }

    def __init__(self, config: DCAEConfig | str = "reference") -> None:
        super().__init__()
        cfg = resolve_config(config)
        self.config = cfg
        d0, d1, d2 = cfg.feature_dims
        n0, n1, n2 = cfg.swin_depths
        h0, h1, h2 = cfg.swin_head_dims
        win, ratio = cfg.window, cfg.mlp_ratio

        self.g_a = nn.Sequential(
            ResidualDown(3, d0),
            SwinStage(d0, h0, win, n0, ratio),
            ResidualDown(d0, d1),
            SwinStage(d1, h1, win, n1, ratio),
            ResidualDown(d1, d2),
            SwinStage(d2, h2, win, n2, ratio),
            conv(d2, cfg.M, 5, 2),
        )
        self.g_s = nn.Sequential(
            deconv(cfg.M, d2, 5, 2),
            SwinStage(d2, h2, win, n2, ratio),
            ResidualUp(d2, d1),
            SwinStage(d1, h1, win, n1, ratio),
            ResidualUp(d1, d0),
            SwinStage(d0, h0, win, n0, ratio),
            ResidualUp(d0, 3),
        )
        hyper_stage = (cfg.N, cfg.hyper_head_dim, cfg.hyper_window, cfg.hyper_depth, ratio)
        self.h_a = nn.Sequential(ResidualDown(cfg.M, cfg.N), SwinStage(*hyper_stage), conv(cfg.N, cfg.N, 3, 2))
        self.h_z_s1 = nn.Sequential(deconv(cfg.N, cfg.N, 3, 2), SwinStage(*hyper_stage), ResidualUp(cfg.N, cfg.M))
        self.h_z_s2 = nn.Sequential(deconv(cfg.N, cfg.N, 3, 2), SwinStage(*hyper_stage), ResidualUp(cfg.N, cfg.M))

        self.entropy_bottleneck = FactorizedPrior(cfg.N)
        self.gaussian_conditional = GaussianConditional()

        # Small tensors made on the CPU whatever the default device (see dcae.nn.swin).
        self.dt = nn.Parameter(torch.randn(cfg.dict_entries, cfg.dict_dim, device="cpu"))
        sc = cfg.slice_channels
        query_dims = [2 * cfg.M + sc * cfg.support_count(i) for i in range(cfg.num_slices)]
        self.dt_cross_attention = nn.ModuleList(
            DictionaryCrossAttention(q, cfg.dict_dim, cfg.dict_heads, cfg.M, cfg.dict_dense_depth, ratio)
            for q in query_dims
        )
        self.cc_mean_transforms = nn.ModuleList(ContextNetwork(q + cfg.M, cfg.context_hidden, sc) for q in query_dims)
        self.cc_scale_transforms = nn.ModuleList(ContextNetwork(q + cfg.M, cfg.context_hidden, sc) for q in query_dims)
        self.lrp_transforms = nn.ModuleList(ContextNetwork(q + cfg.M + sc, cfg.context_hidden, sc) for q in query_dims)
        self.gain_units = GainUnits(cfg.num_rate_points, cfg.M) if cfg.num_rate_points > 0 else None

    # ----------------------------------------------------------------- building blocks for coding
    @property
    def stride(self) -> int:
        """Input sides must be multiples of this."""
        return self.config.stride

    @property
    def variable_rate(self) -> bool:
        """Whether the model has gain units (a continuous ``quality`` setting)."""
        return self.gain_units is not None

    def check_quality(
        self, quality: "float | torch.Tensor | None", check_values: bool = True
    ) -> "float | torch.Tensor | None":
        """Validate ``quality`` against the model: required and in range for variable-rate models,
        absent for single-rate ones (``check_values=False``: presence only, no range check)."""
        if self.gain_units is None:
            if quality is not None:
                raise ValueError("this model has a single rate; it takes no quality setting")
            return None
        if quality is None:
            raise ValueError(f"this variable-rate model needs a quality in [0, {self.gain_units.points - 1}]")
        if not check_values:
            return quality
        q = torch.as_tensor(quality, dtype=torch.float32)
        if not torch.isfinite(q).all() or q.min() < 0 or q.max() > self.gain_units.points - 1:
            raise ValueError(f"quality must lie in [0, {self.gain_units.points - 1}], got {quality}")
        return quality

    def gain(
        self, features: torch.Tensor, quality: "float | torch.Tensor | None", in_place: bool = False
    ) -> torch.Tensor:
        """The analysis features ``g_a(x)`` scaled to the rate of ``quality`` (variable-rate
        models); ``in_place`` scales ``features`` itself (no gradients: one buffer less)."""
        if self.gain_units is None:
            return features
        gains = self.gain_units.gain(quality).to(features.device, features.dtype)
        return features.mul_(gains) if in_place else features * gains

    def ungain(self, y_hat: torch.Tensor, quality: "float | torch.Tensor | None") -> torch.Tensor:
        """The quantised latent scaled back for the synthesis transform ``g_s``."""
        if self.gain_units is None:
            return y_hat
        return y_hat * self.gain_units.inverse_gain(quality).to(y_hat.device, y_hat.dtype)

    def analysis(self, x: torch.Tensor, quality: "float | torch.Tensor | None" = None) -> torch.Tensor:
        """Image -> latent y (gained when the model is variable-rate)."""
        return self.gain(self.g_a(x), quality)

    def synthesis(self, y_hat: torch.Tensor, quality: "float | torch.Tensor | None" = None) -> torch.Tensor:
        """Quantised latent -> image (unclamped)."""
        return self.g_s(self.ungain(y_hat, quality))

    def z_medians(self) -> torch.Tensor:
        """The factorised prior's per-channel medians shaped (1, N, 1, 1): z is quantised around them."""
        return self.entropy_bottleneck.medians().reshape(1, -1, 1, 1)

    def hyper_features(self, z_hat: torch.Tensor) -> torch.Tensor:
        """Quantised z -> concatenated (latent_scales, latent_means) features."""
        return torch.cat([self.h_z_s1(z_hat), self.h_z_s2(z_hat)], dim=1)

    def slice_context(self, index: int, hyper: torch.Tensor, previous: list[torch.Tensor]) -> SliceContext:
        """Mean, scale and support features of slice ``index`` given earlier quantised slices."""
        support_slices = previous[: self.config.support_count(index)]
        query = torch.cat([hyper, *support_slices], dim=1)
        dictionary_info = self.dt_cross_attention[index](query, self.dt)
        support = torch.cat([query, dictionary_info], dim=1)
        return SliceContext(
            mean=self.cc_mean_transforms[index](support),
            scale=self.cc_scale_transforms[index](support),
            support=support,
        )

    def refine_slice(self, index: int, context: SliceContext, y_hat_slice: torch.Tensor) -> torch.Tensor:
        """Add the latent residual prediction, bounded to (-0.5, 0.5), to a quantised slice."""
        lrp = self.lrp_transforms[index](torch.cat([context.support, y_hat_slice], dim=1))
        return y_hat_slice + 0.5 * torch.tanh(lrp)

    # ------------------------------------------------------------------------------ training pass
    def forward(
        self,
        x: torch.Tensor,
        quality: "float | torch.Tensor | None" = None,
        rate_proxy: str = "noise",
        noise: "dict[str, torch.Tensor] | None" = None,
        features: "torch.Tensor | None" = None,
    ) -> dict[str, Any]:
        """Compress and reconstruct ``x`` differentiably.

        Args:
            x: (B, 3, H, W) images in [0, 1], H and W multiples of :attr:`stride`.
            quality: rate point for variable-rate models (a float, or one value per image).
            rate_proxy: in training, how the likelihoods see quantisation: ``"noise"`` (additive
                uniform noise, as the reference) or ``"ste"`` (the same hard rounding the decoder
                sees). The decoder path always uses rounding with a straight-through gradient.
                Outside training, everything is hard-rounded exactly as the codec does.
            noise: the training noise of the ``"noise"`` proxy, uniform in [-0.5, 0.5) and
                shaped like y and z (:meth:`noise_shapes`), so a caller can draw it from its own
                generator; by default it is drawn from PyTorch's global generator.
            features: the analysis transform's output for ``x`` (``g_a(x)``, before the gain),
                computed beforehand: cached latents, for training the other parts alone.

        Returns:
            ``{"x_hat": (B,3,H,W), "likelihoods": {"y": ..., "z": ...},
            "params": {"y": y, "means": ..., "scales": ..., "y_hat": ...}}``.
        """
        # Checks that read tensor values would stall an accelerator at every training step; the
        # trainer's batches and qualities are valid by construction, so there they are skipped.
        read_values = not self.training or x.device.type == "cpu"
        validate_image_batch(x, self.stride, check_values=read_values)
        quality = self.check_quality(quality, check_values=read_values)
        if rate_proxy not in ("noise", "ste"):
            raise ValueError(f"rate_proxy must be 'noise' or 'ste', got {rate_proxy!r}")
        proxy = rate_proxy if self.training else "round"
        decoder_mode = "ste" if self.training else "round"

        y = self.analysis(x, quality) if features is None else self.gain(features.to(x.dtype), quality)
        z = self.h_a(y)
        noise = noise or {}
        _, z_likelihoods = self.entropy_bottleneck(z, mode=proxy, noise=noise.get("z"))
        y_noise = noise["y"].chunk(self.config.num_slices, dim=1) if "y" in noise else None
        z_hat = quantize(z, self.z_medians().to(z.dtype), decoder_mode)
        hyper = self.hyper_features(z_hat)

        likelihoods, means, scales = [], [], []

        def quantize_slice(index: int, y_slice: "torch.Tensor | None", ctx: SliceContext) -> torch.Tensor:
            assert y_slice is not None
            rate_mode = proxy if proxy == "noise" else decoder_mode
            y_for_rate = quantize(y_slice, ctx.mean, rate_mode, None if y_noise is None else y_noise[index])
            likelihoods.append(self.gaussian_conditional.likelihood(y_for_rate, ctx.scale, ctx.mean))
            means.append(ctx.mean)
            scales.append(ctx.scale)
            return quantize(y_slice, ctx.mean, decoder_mode)

        y_hat = run_slices(self, hyper, y, quantize_slice)
        x_hat = self.synthesis(y_hat, quality)
        return {
            "x_hat": x_hat,
            "likelihoods": {"y": torch.cat(likelihoods, dim=1), "z": z_likelihoods},
            "params": {"y": y, "means": torch.cat(means, dim=1), "scales": torch.cat(scales, dim=1), "y_hat": y_hat},
        }

    def noise_shapes(self, batch: int, height: int, width: int) -> dict[str, tuple[int, ...]]:
        """The shapes of y and z for a batch of padded images of ``height`` x ``width``."""
        latent, hyper = self.config.latent_stride, self.config.stride
        return {
            "y": (batch, self.config.M, height // latent, width // latent),
            "z": (batch, self.config.N, height // hyper, width // hyper),
        }

    def aux_loss(self) -> torch.Tensor:
        """Loss that fits the factorised prior's quantiles (use a separate optimiser)."""
        return self.entropy_bottleneck.aux_loss()

    def main_parameters(self) -> list[nn.Parameter]:
        """Every trainable parameter except the prior's ``quantiles``."""
        return [p for name, p in self.named_parameters() if not name.endswith("quantiles")]

    def part_parameters(self, part: str) -> list[nn.Parameter]:
        """The parameters of one of :attr:`TRAINABLE_PARTS`."""
        if part not in self.TRAINABLE_PARTS:
            raise ValueError(f"part must be one of {', '.join(self.TRAINABLE_PARTS)}, not {part!r}")
        names = self.TRAINABLE_PARTS[part]
        return [p for name, p in self.named_parameters() if any(name == n or name.startswith(n + ".") for n in names)]

    def aux_parameters(self) -> list[nn.Parameter]:
        """The prior's ``quantiles``."""
        return [self.entropy_bottleneck.quantiles]


def build_model(preset_or_config: "str | DCAEConfig | dict[str, Any]" = "reference") -> DCAE:
    """Build a randomly initialised :class:`DCAE` from a preset name, config or dictionary."""
    return DCAE(resolve_config(preset_or_config))
