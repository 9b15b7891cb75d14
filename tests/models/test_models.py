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
        assert builders.is_current(test_models.dir / model.relpath), model.relpath


def test_flux_dev_detected(comfy, test_models):
    patcher = comfy.load_diffusion_model(str(test_models.path("diffusion_models", test_models.flux_dev)))
    assert type(patcher.model.model_config).__name__ == "Flux"  # dev (guidance_in), not FluxSchnell
    unet = patcher.model.model_config.unet_config
    assert unet["hidden_size"] == 3072 and unet["depth"] == 1 and unet["depth_single_blocks"] == 0
    assert unet["guidance_embed"] is True
    assert unet["context_in_dim"] == 4096 and unet["vec_in_dim"] == 768


def test_sd3_detected_and_runs(comfy, test_models):
    patcher = comfy.load_diffusion_model(str(test_models.path("diffusion_models", test_models.sd3)))
    assert type(patcher.model.model_config).__name__ == "SD3"
    model = patcher.model
    assert model.diffusion_model.pos_embed_max_size == builders.SD3_POS_EMBED_MAX_SIZE
    x = torch.randn(1, 16, 32, 32)
    with torch.inference_mode():
        out = model.diffusion_model(x, torch.tensor([0.5]), context=torch.randn(1, 77, 4096),
                                    y=torch.randn(1, 2048))  # fmt: skip
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_clip_l_loads_and_encodes(comfy, test_models):
    clip = comfy.load_clip([str(test_models.path("text_encoders", test_models.clip_l))],
                           clip_type=comfy.CLIPType.SD3)  # fmt: skip
    tokens = clip.tokenize("a photo of a cat")
    out = clip.encode_from_tokens(tokens, return_pooled=True, return_dict=True)
    assert tuple(out["cond"].shape) == (1, 77, 4096)
    assert out["pooled_output"].shape[-1] >= 768  # CLIP-L pooled (768) + zeros for CLIP-G; FLUX reads 768
    assert torch.isfinite(out["cond"]).all() and out["cond"].abs().sum() > 0


@pytest.mark.parametrize("name", [builders.TAEF1, builders.TAESD3])
def test_taesd_listed_and_decodes(comfy, test_models, name):
    import nodes

    assert name in nodes.VAELoader.vae_list(nodes.VAELoader)
    (vae,) = nodes.VAELoader().load_vae(name)
    with torch.inference_mode():
        image = vae.decode(torch.randn(1, 16, 16, 16))
        latent = vae.encode(image)
    assert tuple(image.shape) == (1, 128, 128, 3)
    assert tuple(latent.shape) == (1, 16, 16, 16)
