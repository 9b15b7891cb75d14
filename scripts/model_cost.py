"""The FLOP model's constants (ralu/cost.py's StepCost) for the diffusion model that actually ran, read
from its weights' shapes, as ralu/cost.py counts them for the real models: `make demo`'s and
`make bench`'s "FLOP model, the model run".

a = 2 * the parameters, b = 4 * hidden * the blocks that run a joint attention (FLUX's double and
single blocks, SD3's joint blocks), b_x = 4 * hidden * the blocks with an image-only attention
(MMDiT-X); the edge decode is the TAESD decoder's that the test models use (taef1, taesd3).
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path

from ralu.cost import StepCost

# The test models' VAEs (taef1, taesd3) are TAESD decoders: 64 channels throughout, 3x3 convs of
# 2 * 9 * 64 * 64 FLOPs per pixel at their level. Latent level (1/64 of the output pixels): conv_in
# 16->64 and 9 convs; the 1/16 and 1/4 levels: 10 convs each; full level: 4 convs and conv_out 64->3.
# About 0.54e6 FLOPs per output pixel, against 9.5e6 for the real models' KL decoder (ralu/cost.py).
TAESD_DECODE_FLOPS_PER_PIXEL = (
    (2 * 9 * 16 * 64 + 9 * 2 * 9 * 64 * 64) / 64
    + 10 * 2 * 9 * 64 * 64 / 16
    + 10 * 2 * 9 * 64 * 64 / 4
    + 4 * 2 * 9 * 64 * 64
    + 2 * 9 * 64 * 3
)
# The key that tells each family's diffusion model apart, and gives its width.
INPUT_KEY = {"flux": "img_in.weight", "sd3": "x_embedder.proj.weight"}


def safetensors_shapes(path: Path) -> dict[str, list[int]]:
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
    return {k: v["shape"] for k, v in header.items() if k != "__metadata__"}


def blocks(shapes: Mapping, prefix: str, part: str = "") -> set[str]:
    """The indices of the blocks `prefix`N. (that hold a key containing `part`)."""
    return {k.split(".")[1] for k in shapes if k.startswith(prefix + ".") and part in k}


def diffusion_model_shapes(shapes: Mapping[str, Sequence[int]], family: str) -> dict[str, Sequence[int]]:
    """The diffusion model's own keys, without the prefix a whole checkpoint puts before them
    ("model.diffusion_model."), and without its text encoders and VAE."""
    suffix = INPUT_KEY[family]
    prefixes = {k[: -len(suffix)] for k in shapes if k.endswith(suffix)}
    if len(prefixes) != 1:
        raise ValueError(f"no single {family} diffusion model in these weights (keys ending in {suffix})")
    (prefix,) = prefixes
    return {k[len(prefix) :]: s for k, s in shapes.items() if k.startswith(prefix)}


def model_cost(
    shapes: Mapping[str, Sequence[int]],
    family: str,
    text_tokens: int,
    decode_flops_per_pixel: float = TAESD_DECODE_FLOPS_PER_PIXEL,
) -> tuple[StepCost, str]:
    """The cost model's constants for a diffusion model with these weight shapes, and a description."""
    shapes = diffusion_model_shapes(shapes, family)
    params = sum(math.prod(s) for k, s in shapes.items() if k != "pos_embed")  # SD3's fixed table
    hidden = shapes[INPUT_KEY[family]][0]
    if family == "flux":
        double, single = blocks(shapes, "double_blocks"), blocks(shapes, "single_blocks")
        joint, image_only = len(double) + len(single), 0
        layout = f"{len(double)} double + {len(single)} single blocks"
    else:  # SD3 / SD3.5 (MMDiT): one joint attention per block, MMDiT-X's attn2 over the image alone
        joint, image_only = (
            len(blocks(shapes, "joint_blocks")),
            len(blocks(shapes, "joint_blocks", ".attn2.")),
        )
        layout = f"{joint} joint block{'s' * (joint != 1)}" + (
            f" ({image_only} with image self-attention)" if image_only else ""
        )
    cost = StepCost(
        2 * params, 4 * hidden * joint, text_tokens, decode_flops_per_pixel, 4 * hidden * image_only
    )
    what = f"{params / 1e6:.1f}M parameters, hidden {hidden}, {layout}, {text_tokens} text tokens"
    return cost, what


def run_model_cost(unet_path: Path, family: str, text_tokens: int) -> tuple[StepCost, str]:
    """The cost model's constants for the diffusion model file actually run (parameters, width and depth
    read from its header) with a TAESD edge decode, and a description of it."""
    cost, what = model_cost(safetensors_shapes(unet_path), family, text_tokens)
    return cost, f"{unet_path.name}: {what}"
