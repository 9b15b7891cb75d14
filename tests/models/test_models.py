"""Every test model loads through ComfyUI's real loaders and is detected as the intended model."""

from __future__ import annotations

import pytest
import torch

from tests.models import builders


@pytest.fixture(scope="module")
def comfy(comfy_inprocess, test_models):
    import comfy.sd
    import folder_paths

    for folder in builders.FOLDERS:
        path = str(test_models.dir / folder)
        if path not in folder_paths.get_folder_paths(folder):
            folder_paths.add_model_folder_path(folder, path)
    return comfy.sd


def test_all_files_current(test_models):
    for model in builders.MODELS:
        assert builders.is_current(test_models.dir / model.relpath, model.version), model.relpath


def test_flux_dev_detected(comfy, test_models):
    patcher = comfy.load_diffusion_model(str(test_models.path("diffusion_models", test_models.flux_dev)))
    assert type(patcher.model.model_config).__name__ == "Flux"  # dev (guidance_in), not FluxSchnell
    unet = patcher.model.model_config.unet_config
    assert unet["hidden_size"] == 3072 and unet["depth"] == 1 and unet["depth_single_blocks"] == 0
    assert unet["guidance_embed"] is True
    assert unet["context_in_dim"] == 4096 and unet["vec_in_dim"] == 768


def load_sd3(layout: builders.SD3Layout):
    """The layout's file through ComfyUI's UNETLoader, as a workflow loads it."""
    import folder_paths
    import nodes

    assert layout.filename in folder_paths.get_filename_list("diffusion_models")
    (patcher,) = nodes.UNETLoader().load_unet(layout.filename, "default")
    return patcher


@pytest.mark.parametrize("layout", builders.SD3_LAYOUTS, ids=lambda layout: layout.label)
def test_sd3_layout_detected_and_runs(comfy, layout):
    patcher = load_sd3(layout)
    assert type(patcher.model.model_config).__name__ == "SD3"
    unet = patcher.model.model_config.unet_config
    assert unet.get("qk_norm") == layout.qk_norm
    assert unet["x_block_self_attn_layers"] == list(layout.x_block_self_attn_layers)
    assert unet["depth"] == builders.SD3_DEPTH and unet["adm_in_channels"] == builders.SD3_ADM
    size = layout.pos_embed_max_size
    assert unet["pos_embed_max_size"] == size and unet["num_patches"] == size**2
    model = patcher.model.diffusion_model
    norms = {type(block.attn.ln_q).__name__ for joint in model.joint_blocks
             for block in (joint.context_block, joint.x_block)}  # fmt: skip
    assert norms == ({"RMSNorm"} if layout.qk_norm == "rms" else {"Identity"})
    with_attn2 = [i for i, joint in enumerate(model.joint_blocks) if joint.x_block.x_block_self_attn]
    assert with_attn2 == list(layout.x_block_self_attn_layers)
    x = torch.randn(1, 16, 32, 32)
    with torch.inference_mode():
        out = model(x, torch.tensor([0.5]), context=torch.randn(1, 77, 4096), y=torch.randn(1, 2048))
    assert out.shape == x.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("layout", builders.SD3_LAYOUTS, ids=lambda layout: layout.label)
def test_sd3_position_table_is_the_real_layout(comfy, pack, layout):
    """The stored table is SD3's (quarter-unit sin-cos, origin (P - 64) / 2 entries), rounded to the
    file's fp16, and the pack's SD3 family reads it as sin-cos as ComfyUI loads it (cast to fp32 on
    the CPU)."""
    import importlib

    patcher = load_sd3(layout)
    size, model = layout.pos_embed_max_size, patcher.model.diffusion_model
    expected = builders.sd3_position_table(layout.hidden, size).half().to(model.pos_embed.dtype)
    assert torch.equal(model.pos_embed, expected)
    sd3 = importlib.import_module(f"{pack.__name__}.families.sd3")
    clone = patcher.clone()
    positions = sd3.install(clone)
    with positions.stage2(torch.zeros(1, 1, 2), (4, 4)):
        positions._stage2_embedding()
    fit = positions._fit
    assert fit is not None, "the SD3 family fell back to interpolating the table"
    assert fit.scale == pytest.approx(0.25, abs=1e-6)
    assert (fit.row_origin, fit.col_origin) == pytest.approx(((size - 64) / 2,) * 2, abs=1e-4)


def test_clip_l_loads_and_encodes(comfy, test_models):
    clip = comfy.load_clip([str(test_models.path("text_encoders", test_models.clip_l))],
                           clip_type=comfy.CLIPType.SD3)  # fmt: skip
    tokens = clip.tokenize("a photo of a cat")
    out = clip.encode_from_tokens(tokens, return_pooled=True, return_dict=True)
    assert tuple(out["cond"].shape) == (1, 77, 4096)
    assert out["pooled_output"].shape[-1] >= 768  # CLIP-L pooled (768) + zeros for CLIP-G; FLUX reads 768
    assert torch.isfinite(out["cond"]).all() and out["cond"].abs().sum() > 0


@pytest.mark.parametrize("name", list(builders.TAE_CHANNELS))
def test_taesd_listed_and_decodes(comfy, test_models, name):
    import nodes

    channels = builders.TAE_CHANNELS[name]
    assert name in nodes.VAELoader.vae_list(nodes.VAELoader)
    (vae,) = nodes.VAELoader().load_vae(name)
    with torch.inference_mode():
        image = vae.decode(torch.randn(1, channels, 16, 16))
        latent = vae.encode(image)
    assert tuple(image.shape) == (1, 128, 128, 3)
    assert tuple(latent.shape) == (1, channels, 16, 16)
