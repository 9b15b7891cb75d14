"""Tiny random-weight FLUX and SD3 built from ComfyUI's own classes (not loader-detectable: fast)."""

import pytest
import torch

from tests.models.builders import FLUX_DEV_CONFIG, flux1_config, flux_params, random_weights

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


def build_patcher(model_config, name: str, fixed: dict | None = None):
    import comfy.model_management as mm
    import comfy.model_patcher

    model_config.set_inference_dtype(torch.float32, None)
    model = model_config.get_model({})
    shapes = model.diffusion_model.state_dict()
    model.diffusion_model.load_state_dict(random_weights(shapes, name, torch.float32, fixed))
    return comfy.model_patcher.ModelPatcher(model, mm.get_torch_device(), mm.unet_offload_device())


def build_tiny_flux():
    import comfy.supported_models

    return build_patcher(comfy.supported_models.Flux(flux1_config(TINY_FLUX)), "tiny_flux")


def build_tiny_flux_schnell():
    """The tiny FLUX without its guidance input, as ComfyUI's FluxSchnell config detects schnell."""
    import comfy.supported_models

    config = flux1_config({**TINY_FLUX, "guidance_embed": False})
    return build_patcher(comfy.supported_models.FluxSchnell(config), "tiny_flux_schnell")


# What ComfyUI's detection sets for LongCat-Image and Ovis-Image (FLUX's class, no pooled prompt and no
# guidance input; text ids counting along both image axes), on the tiny FLUX's sizes.
TINY_FLUX_TEXT_IDS = {**TINY_FLUX, "vec_in_dim": None, "guidance_embed": False, "txt_ids_dims": [1, 2]}


def build_tiny_longcat():
    """LongCat-Image's model class (ComfyUI 0.33): it shifts the image ids past the prompt's at each call."""
    import comfy.supported_models

    if not hasattr(comfy.supported_models, "LongCatImage"):
        pytest.skip("this ComfyUI has no LongCat-Image (added after 0.3.75)")
    return build_patcher(comfy.supported_models.LongCatImage(dict(TINY_FLUX_TEXT_IDS)), "tiny_longcat")


def build_tiny_ovis():
    """Ovis-Image as ComfyUI 0.33 detects it: FLUX's class with a gated MLP and a text norm, loaded
    under FLUX.1 schnell's config (no guidance input)."""
    import comfy.supported_models

    if not {"yak_mlp", "txt_norm"} <= flux_params():
        pytest.skip("this ComfyUI has no Ovis-Image FLUX variant (added after 0.3.75)")
    config = {**TINY_FLUX_TEXT_IDS, "yak_mlp": True, "txt_norm": True}
    return build_patcher(comfy.supported_models.FluxSchnell(config), "tiny_ovis")


def build_tiny_flux_controlnet():
    """A tiny XLabs-style FLUX ControlNet (an image hint), wrapped the way ComfyUI's loader wraps one."""
    import comfy.controlnet
    import comfy.ldm.flux.controlnet
    import comfy.model_management as mm
    import comfy.ops

    config = {k: v for k, v in flux1_config(TINY_FLUX).items() if k != "image_model"}
    model = comfy.ldm.flux.controlnet.ControlNetFlux(
        operations=comfy.ops.disable_weight_init, device="cpu", dtype=torch.float32, **config
    )
    model.load_state_dict(random_weights(model.state_dict(), "tiny_flux_controlnet", torch.float32))
    # As ComfyUI (0.30 and newer) leaves diffusion models: outside inference mode, as here, a weight
    # that tracks gradients fails FLUX's in-place add of the ControlNet residuals.
    model.requires_grad_(False)
    return comfy.controlnet.ControlNet(
        model, load_device=mm.get_torch_device(), extra_conds=["y", "guidance"]
    )


def build_tiny_sd15():
    """A tiny SD1.5-style UNet (4-channel latents): a model RALU does not support."""
    import comfy.supported_models

    config = dict(
        image_size=32,
        in_channels=4,
        out_channels=4,
        model_channels=32,
        num_res_blocks=[1],
        channel_mult=[1],
        transformer_depth=[1],
        transformer_depth_output=[1, 1],
        transformer_depth_middle=1,
        context_dim=32,
        num_head_channels=16,
        use_linear_in_transformer=False,
        adm_in_channels=None,
        use_temporal_attention=False,
        use_spatial_transformer=True,
    )
    return build_patcher(comfy.supported_models.SD15(config), "tiny_sd15")


def sd3_position_table(hidden: int, size: int) -> torch.Tensor:
    """SD3's stored table as real checkpoints have it: 2-D sin-cos at a quarter unit per entry, centred
    so that a 64 x 64 crop (a 1024 x 1024 image) starts at position 0."""
    from comfy.ldm.modules.diffusionmodules.mmdit import get_2d_sincos_pos_embed

    table = get_2d_sincos_pos_embed(hidden, size, scaling_factor=4, offset=(size - 64) / 8)
    return torch.from_numpy(table).float().unsqueeze(0)


def build_tiny_sd3(position_table: bool = True):
    """pos_embed_max_size 16 (images up to 256 x 256); `position_table` False leaves the stored table
    out, as an MMDiT without one."""
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
    if not position_table:
        config.update(pos_embed_max_size=None, num_patches=None)
        return build_patcher(comfy.supported_models.SD3(config), "tiny_sd3")
    fixed = {"pos_embed": sd3_position_table(128, config["pos_embed_max_size"])}
    return build_patcher(comfy.supported_models.SD3(config), "tiny_sd3", fixed)


def sd3_conditioning(seed: int, tokens: int = 8):
    generator = torch.Generator().manual_seed(seed)
    context = torch.randn(1, tokens, 32, generator=generator)
    pooled = torch.randn(1, 32, generator=generator)
    return [[context, {"pooled_output": pooled}]]


def flux_conditioning(seed: int, tokens: int = 8, guidance: float = 3.5):
    generator = torch.Generator().manual_seed(seed)
    context = torch.randn(1, tokens, 32, generator=generator)
    pooled = torch.randn(1, 16, generator=generator)
    return [[context, {"pooled_output": pooled, "guidance": guidance}]]


def text_conditioning(seed: int, tokens: int = 8):
    """A prompt with no pooled output, as LongCat-Image's and Ovis-Image's text encoders give."""
    context = torch.randn(1, tokens, 32, generator=torch.Generator().manual_seed(seed))
    return [[context, {}]]


def build_kl_vae():
    """A random full-size 16-channel KL VAE (FLUX's and SD3's layout: ComfyUI's AutoencodingEngine),
    decoder only, loaded the way VAELoader loads a file."""
    import comfy.sd
    from comfy.ldm.modules.diffusionmodules.model import Decoder

    config = dict(
        double_z=True,
        z_channels=16,
        resolution=256,
        in_channels=3,
        out_ch=3,
        ch=128,
        ch_mult=[1, 2, 4, 4],
        num_res_blocks=2,
        attn_resolutions=[],
        dropout=0.0,
    )
    with torch.device("meta"):
        shapes = Decoder(**config).state_dict()
    decoder = random_weights(shapes, "kl_vae", torch.float32)
    return comfy.sd.VAE(sd={f"decoder.{k}": v for k, v in decoder.items()})
