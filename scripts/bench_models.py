"""Random-weight diffusion models of the real models' dimensions for `make bench`, built from ComfyUI's
own classes: FLUX.1-dev's (`--gpu`) and SD3 Medium's (`--gpu --family sd3`, and one block of it on the
CPU)."""

from __future__ import annotations

import math
import zlib

from scripts.bench_rows import Family

FLUX_DEV_DEPTH = {"depth": 19, "depth_single_blocks": 38}
# SD3 Medium as ComfyUI's loader detects it (MMDiT's width is 64 x depth; num_blocks, when given, builds
# fewer blocks of that width).
SD3_MEDIUM_CONFIG = {
    "in_channels": 16,
    "out_channels": 16,
    "patch_size": 2,
    "depth": 24,
    "adm_in_channels": 2048,
    "context_embedder_config": {
        "target": "torch.nn.Linear",
        "params": {"in_features": 4096, "out_features": 1536},
    },
    "pos_embed_max_size": 192,
    "num_patches": 192**2,
    "pos_embed_scaling_factor": None,
}


def fill_random_(module, seed: int) -> None:
    """Seeded random weights in place on the module's device, by tests/models/builders.py's rule
    (std 1/sqrt(fan_in) for matrices, 1 for norm gains, 0 for biases)."""
    import torch

    with torch.no_grad():
        for key, tensor in sorted(module.state_dict(keep_vars=True).items()):
            gen = torch.Generator(tensor.device).manual_seed(zlib.crc32(f"{seed}:{key}".encode()))
            if tensor.ndim <= 1:
                tensor.fill_(0.0 if key.endswith("bias") else 1.0)
            else:
                tensor.normal_(0.0, 1.0 / math.sqrt(math.prod(tensor.shape[1:])), generator=gen)


def real_dims_config(family: Family, sd3_blocks: int | None = None):
    """ComfyUI's model config (comfy.supported_models) of FLUX.1-dev's dimensions (the test FLUX's config
    with FLUX.1-dev's depth) or SD3 Medium's, with only `sd3_blocks` of its joint blocks when given."""
    import comfy.supported_models

    from tests.models.builders import FLUX_DEV_CONFIG, flux1_config

    if family.name == "flux":
        return comfy.supported_models.Flux(flux1_config({**FLUX_DEV_CONFIG, **FLUX_DEV_DEPTH}))
    config = dict(SD3_MEDIUM_CONFIG)
    if sd3_blocks is not None:
        config["num_blocks"] = sd3_blocks
    return comfy.supported_models.SD3(config)


def build_real_dims(family: Family, device, dtype, seed: int, sd3_blocks: int | None = None):
    """A ModelPatcher of real_dims_config's model with random weights, built on `device`. SD3's position
    table is the real checkpoints' sin-cos one, which RALU's SD3 positions read."""
    import comfy.model_management as mm
    import comfy.model_patcher
    import torch

    from tests.models.builders import sd3_position_table

    model_config = real_dims_config(family, sd3_blocks)
    model_config.set_inference_dtype(dtype, None)
    model = model_config.get_model({}, device=device)
    fill_random_(model.diffusion_model, seed)
    if family.name == "sd3":
        diffusion_model = model.diffusion_model
        table = sd3_position_table(diffusion_model.hidden_size, SD3_MEDIUM_CONFIG["pos_embed_max_size"])
        with torch.no_grad():
            diffusion_model.pos_embed.copy_(table)
    return comfy.model_patcher.ModelPatcher(
        model, load_device=device, offload_device=mm.unet_offload_device()
    )
