"""FLOPs model of a RALU run against the full-resolution baseline, for the planner's speed-up estimate.

One transformer step over n = L + T tokens (L image, T text) costs a n + b n^2 + b_x L^2:
- a: every weight is used once per token as a multiply-add, so a = 2 * transformer parameters.
- b: per layer of joint attention (image + text), Q K^T and then (softmax) V each take n^2 * hidden
  multiply-adds, so b = 2 * 2 * hidden * layers.
- b_x: the same over the image tokens alone, for layers that attend only among them (SD3.5 Medium).
FLUX.1-dev: ~11.9e9 transformer parameters, hidden 3072, 19 double-stream + 38 single-stream blocks
(each runs one joint attention over image + text), T = 512 T5 tokens:
  a = 2 * 11.9e9 = 23.8e9, b = 4 * 3072 * 57 = 700,416.
The SD3 family (MMDiT: one joint attention per block) with T = 77 CLIP + 256 T5 = 333 tokens, the
parameters counted on ComfyUI's MMDiT built with each model's configuration (the fixed position table
left out, which multiplies no token):
  SD3 Medium:    24 blocks x 1536, ~2.0e9 parameters:  a = 4.0e9,   b = 4 * 1536 * 24 = 147,456.
  SD3.5 Large:   38 blocks x 2432, ~8.06e9 parameters: a = 16.12e9, b = 4 * 2432 * 38 = 369,664
                 (SD3.5 Large Turbo is the same network, distilled to 4 steps).
  SD3.5 Medium:  24 blocks x 1536 (MMDiT-X), ~2.24e9 parameters: a = 4.48e9, b = 147,456, and its
                 first 13 blocks add a self-attention over the image tokens: b_x = 4 * 1536 * 13 = 79,872.

RALU also decodes its stage-1 estimate once at half resolution to score edges. Both models use the
same 16-channel KL decoder (channels 512, 512, 256, 128 from the latent up, 3 ResNet blocks per level,
2 in the middle, nearest-upsample + 3x3 conv between levels). A 3x3 conv costs 2 * 9 * c_in * c_out
FLOPs per pixel at its level; weighting each level by its pixels per output pixel:
  latent level (1/64):  conv_in 16->512, 4 mid convs 512^2, mid attention projections 4 * 512^2 as
                        1x1, 6 convs 512^2                                        -> 0.77e6
  1/4 level (1/16):     upsample conv 512^2, 6 convs 512^2                       -> 2.06e6
  1/2 level (1/4):      upsample conv 512^2, 512->256, 5 convs 256^2, 1x1 skip    -> 3.31e6
  full level (1):       upsample conv 256^2, 256->128, 5 convs 128^2, 1x1 skip,
                        conv_out 128->3                                           -> 3.32e6
about 9.5e6 FLOPs per output pixel; norms, activations and the mid attention's n^2 term (~0.13e6
per pixel at 512x512) are left out. Against a FLUX step at 1024x1024 (~1.2e14) the decode is noise,
but it is counted so that tiny plans are not flattered.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .plan import Plan

VAE_DECODE_FLOPS_PER_PIXEL = 9.5e6
# One full-res token is a 2x2 patch of the 8x-downsampled latent: 16x16 image pixels.
PIXELS_PER_TOKEN_SIDE = 16
SD3_TEXT_TOKENS = 77 + 256


@dataclass(frozen=True)
class StepCost:
    linear_flops_per_token: float
    attention_flops_per_token_pair: float
    text_tokens: int
    vae_decode_flops_per_pixel: float
    # Attention among the image tokens alone (SD3.5 Medium's extra self-attention layers).
    image_attention_flops_per_token_pair: float = 0.0

    def step_flops(self, image_tokens: float) -> float:
        n = image_tokens + self.text_tokens
        joint = self.linear_flops_per_token * n + self.attention_flops_per_token_pair * n * n
        return joint + self.image_attention_flops_per_token_pair * image_tokens * image_tokens


@dataclass(frozen=True)
class CostModel:
    """A model the estimate can be made for: its name, the plan family it runs as, its step cost and
    the step count of its own sampling, which the estimate compares RALU with."""

    label: str
    family: str
    step: StepCost
    baseline_steps: int
    # The time shift of the model's own schedule (ComfyUI's model sampling), which NT-DM matches a
    # custom plan's stages to: 3 for FLUX.1-dev (as the paper) and the SD3 family, 1 for FLUX.1-schnell.
    time_shift: float = 3.0


def _mmdit(params: float, hidden: int, blocks: int, image_only_blocks: int = 0) -> StepCost:
    return StepCost(
        2 * params,
        4 * hidden * blocks,
        SD3_TEXT_TOKENS,
        VAE_DECODE_FLOPS_PER_PIXEL,
        4 * hidden * image_only_blocks,
    )


FLUX_DEV_STEP = StepCost(2 * 11.9e9, 4 * 3072 * 57, 512, VAE_DECODE_FLOPS_PER_PIXEL)
# FLUX.1-schnell is FLUX.1-dev's network without the guidance embedding (a few million parameters less,
# left out) and prompted with 256 T5 tokens, as its reference pipeline does.
FLUX_SCHNELL_STEP = replace(FLUX_DEV_STEP, text_tokens=256)
# The keys are the Planner's estimate_for options; "flux" and "sd3" are also the plan families. The
# baselines are each model's usual step count: the paper's 50 and 28 for FLUX.1-dev and SD3 Medium, the
# model cards' 4, 28, 4 and 40 for FLUX.1-schnell, SD3.5 Large, Large Turbo and Medium.
COST_MODELS: dict[str, CostModel] = {
    "flux": CostModel("FLUX.1-dev", "flux", FLUX_DEV_STEP, 50),
    "flux_schnell": CostModel("FLUX.1-schnell", "flux", FLUX_SCHNELL_STEP, 4, time_shift=1.0),
    "sd3": CostModel("SD3 Medium", "sd3", _mmdit(2.0e9, 1536, 24), 28),
    "sd3.5_large": CostModel("SD3.5 Large", "sd3", _mmdit(8.06e9, 2432, 38), 28),
    "sd3.5_large_turbo": CostModel("SD3.5 Large Turbo", "sd3", _mmdit(8.06e9, 2432, 38), 4),
    "sd3.5_medium": CostModel("SD3.5 Medium", "sd3", _mmdit(2.24e9, 1536, 24, image_only_blocks=13), 40),
}
# Each family's own step cost (FLUX.1-dev, SD3 Medium), as before the SD3.5 variants.
FAMILY_COST: dict[str, StepCost] = {family: COST_MODELS[family].step for family in ("flux", "sd3")}


@dataclass(frozen=True)
class SpeedupEstimate:
    speedup: float
    ralu_flops: float
    baseline_flops: float
    tokens: tuple[float, float, float]
    # Image-token linear work only (no text, attention or decode): the paper's back-of-envelope ratio.
    linear_only_speedup: float
    baseline_steps: int


def stage_token_counts(plan: Plan, full_tokens: float) -> tuple[float, float, float]:
    """Image tokens per stage: quarter-res, quarter-res with up_ratio of them at full res, full res."""
    low = full_tokens / 4
    return low, low * (1.0 - plan.up_ratio) + full_tokens * plan.up_ratio, float(full_tokens)


def cost_model(name: str) -> CostModel:
    if name not in COST_MODELS:
        raise ValueError(f"model ({name!r}) must be one of {', '.join(COST_MODELS)}")
    return COST_MODELS[name]


def estimate_speedup(
    plan: Plan, model: str, height: int, width: int, baseline_steps: int | None = None
) -> SpeedupEstimate:
    """The estimate on one of COST_MODELS ("flux", "sd3", "sd3.5_large", ...) against its own step count,
    or against baseline_steps."""
    chosen = cost_model(model)
    steps = chosen.baseline_steps if baseline_steps is None else baseline_steps
    return estimate_speedup_for(chosen.step, plan, height, width, steps)


def estimate_speedup_for(
    cost: StepCost, plan: Plan, height: int, width: int, baseline_steps: int
) -> SpeedupEstimate:
    """The estimate for any model's step cost, e.g. one read from the file that is actually run."""
    full_tokens = (height // PIXELS_PER_TOKEN_SIDE) * (width // PIXELS_PER_TOKEN_SIDE)
    tokens = stage_token_counts(plan, full_tokens)

    edge_decode = cost.vae_decode_flops_per_pixel * (height // 2) * (width // 2)
    ralu = sum(n * cost.step_flops(L) for n, L in zip(plan.steps, tokens)) + edge_decode
    baseline = baseline_steps * cost.step_flops(full_tokens)
    linear_only = baseline_steps * full_tokens / sum(n * L for n, L in zip(plan.steps, tokens))
    return SpeedupEstimate(baseline / ralu, ralu, baseline, tokens, linear_only, baseline_steps)
