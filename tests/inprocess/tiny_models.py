"""Tiny random-weight FLUX and SD3 built from ComfyUI's own classes (not loader-detectable: fast)."""

import torch

from tests.models.builders import FLUX_DEV_CONFIG, random_weights

# The loader-detectable test FLUX's config, shrunk: ComfyUI's loader would not detect this one.
TINY_FLUX = {
    **FLUX_DEV_CONFIG,
    "vec_in_dim": 16,
    "context_in_dim": 32,
    "hidden_size": 128,
    "num_heads": 4,
    "depth_single_blocks": 1,
    "axes_dim": [4, 14, 14],
}


def build_patcher(model_config, name: str):
    import comfy.model_management as mm
    import comfy.model_patcher

    model_config.set_inference_dtype(torch.float32, None)
    model = model_config.get_model({})
    shapes = model.diffusion_model.state_dict()
    model.diffusion_model.load_state_dict(random_weights(shapes, name, torch.float32))
    return comfy.model_patcher.ModelPatcher(model, mm.get_torch_device(), mm.unet_offload_device())


def build_tiny_flux():
    import dataclasses

    import comfy.ldm.flux.model
    import comfy.supported_models

    config = dict(TINY_FLUX)
    if "txt_ids_dims" in {f.name for f in dataclasses.fields(comfy.ldm.flux.model.FluxParams)}:
        config["txt_ids_dims"] = []
    return build_patcher(comfy.supported_models.Flux(config), "tiny_flux")


def build_tiny_flux_controlnet():
    """A tiny XLabs-style FLUX ControlNet (an image hint), wrapped the way ComfyUI's loader wraps one."""
    import comfy.controlnet
    import comfy.ldm.flux.controlnet
    import comfy.model_management as mm
    import comfy.ops

    config = {k: v for k, v in TINY_FLUX.items() if k != "image_model"}
    model = comfy.ldm.flux.controlnet.ControlNetFlux(
        operations=comfy.ops.disable_weight_init, device="cpu", dtype=torch.float32, **config
    )
    model.load_state_dict(random_weights(model.state_dict(), "tiny_flux_controlnet", torch.float32))
    return comfy.controlnet.ControlNet(
        model, load_device=mm.get_torch_device(), extra_conds=["y", "guidance"]
    )


def build_tiny_sd3():
    import comfy.supported_models

    config = dict(
        in_channels=16,
        patch_size=2,
        depth=2,
        adm_in_channels=32,
        pos_embed_max_size=16,
        num_patches=256,
        context_embedder_config={
            "target": "torch.nn.Linear",
            "params": {"in_features": 32, "out_features": 128},
        },
    )
    return build_patcher(comfy.supported_models.SD3(config), "tiny_sd3")


def flux_conditioning(seed: int, tokens: int = 8, guidance: float = 3.5):
    generator = torch.Generator().manual_seed(seed)
    context = torch.randn(1, tokens, 32, generator=generator)
    pooled = torch.randn(1, 16, generator=generator)
    return [[context, {"pooled_output": pooled, "guidance": guidance}]]
