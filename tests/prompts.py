"""API prompts for RALU KSampler on the test models, shared by the server and browser tests, and the
readers of what those prompts leave on a server."""

from __future__ import annotations

PLAN_NODE, SAMPLER_NODE = "6", "8"
PLAIN_SAMPLER_NODE = "7"

# Per family: the test model (a TestModels attribute), the tiny VAE and the default preset.
FAMILIES = {
    "flux": {"unet": "flux_dev", "vae": "taef1", "preset": "flux_7x"},
    "sd3": {"unet": "sd3", "vae": "taesd3", "preset": "sd3_3x"},
}


def ralu_prompt(
    models, seed=1, batch=1, cfg=1.0, preset=None, size=256, prefix="ralu", family="flux", unet=None
):
    """RALU Stage Planner + RALU KSampler on the family's test model (`unet`: another model file of the
    family, e.g. an SD3.5 layout), random conditioning shaped for the family and a negative prompt,
    the family's tiny VAE for edges and decoding; saves the latent, the pictures and the early mask."""
    defaults = FAMILIES[family]
    return {
        "1": {
            "class_type": "UNETLoader",
            "inputs": {"unet_name": unet or getattr(models, defaults["unet"]), "weight_dtype": "default"},
        },
        "2": {
            "class_type": "RALUTestConditioning",
            "inputs": {"seed": 0, "tokens": 16, "family": family, "guidance": 3.5, "scale": 1.0},
        },
        "3": {
            "class_type": "RALUTestConditioning",
            "inputs": {"seed": 1, "tokens": 12, "family": family, "guidance": 3.5, "scale": 1.0},
        },
        "4": {
            "class_type": "EmptySD3LatentImage",
            "inputs": {"width": size, "height": size, "batch_size": batch},
        },
        "5": {"class_type": "VAELoader", "inputs": {"vae_name": getattr(models, defaults["vae"])}},
        PLAN_NODE: {
            "class_type": "RALUStagePlanner",
            "inputs": {
                "preset": preset or defaults["preset"],
                "n1": 1,
                "n2": 1,
                "n3": 1,
                "e1": 0.3,
                "e2": 0.45,
                "up_ratio": 0.3,
                "shifts": "solve (NT-DM)",
                "h1": 3.0,
                "h2": 3.0,
                "h3": 3.0,
                "z": 6.0,
                "estimate_for": family,
                "width": 1024,
                "height": 1024,
            },
        },
        SAMPLER_NODE: {
            "class_type": "RALUKSampler",
            "inputs": {
                "model": ["1", 0],
                "positive": ["2", 0],
                "negative": ["3", 0],
                "latent_image": ["4", 0],
                "plan": [PLAN_NODE, 0],
                "vae": ["5", 0],
                "seed": seed,
                "cfg": cfg,
                "edge_source": "vae",
                "faithful_gray": True,
            },
        },
        "9": {
            "class_type": "SaveLatent",
            "inputs": {"samples": [SAMPLER_NODE, 0], "filename_prefix": prefix},
        },
        "10": {"class_type": "VAEDecode", "inputs": {"samples": [SAMPLER_NODE, 0], "vae": ["5", 0]}},
        "11": {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": prefix}},
        "12": {"class_type": "MaskToImage", "inputs": {"mask": [SAMPLER_NODE, 1]}},
        "13": {
            "class_type": "SaveImage",
            "inputs": {"images": ["12", 0], "filename_prefix": prefix + "_mask"},
        },
    }


def plain_prompt(models, seed, prefix, steps=2, **ralu_kwargs):
    """A stock KSampler in place of the RALU nodes of `ralu_prompt(models, **ralu_kwargs)`, with its
    cfg, on the same UNETLoader node (id 1), so that the server reuses the model a RALU run sampled
    with; saves only the latent."""
    prompt = ralu_prompt(models, prefix=prefix, **ralu_kwargs)
    cfg = prompt[SAMPLER_NODE]["inputs"]["cfg"]
    for node in (PLAN_NODE, SAMPLER_NODE, "10", "11", "12", "13"):
        del prompt[node]
    prompt[PLAIN_SAMPLER_NODE] = {
        "class_type": "KSampler",
        "inputs": {
            "model": ["1", 0],
            "positive": ["2", 0],
            "negative": ["3", 0],
            "latent_image": ["4", 0],
            "seed": seed,
            "steps": steps,
            "cfg": cfg,
            "sampler_name": "euler",
            "scheduler": "simple",
            "denoise": 1.0,
        },
    }
    prompt["9"]["inputs"]["samples"] = [PLAIN_SAMPLER_NODE, 0]
    return prompt


def saved_latent(comfy_host, prefix):
    """The latent tensor the prompt's SaveLatent wrote under `prefix` (exactly one file)."""
    import safetensors.torch

    [path] = sorted(comfy_host.output_dir.glob(f"{prefix}_*.latent"))
    return safetensors.torch.load_file(str(path))["latent_tensor"]


def executed(entry, node_id) -> bool:
    """Whether the finished prompt ran the node rather than taking its cached output."""
    for kind, data in entry["status"]["messages"]:
        if kind == "execution_cached" and node_id in data["nodes"]:
            return False
    return True


def stage_report(entry) -> str:
    """RALU KSampler's text on the node: "tokens per stage: ...; model calls per stage: ..."."""
    [text] = entry["outputs"][SAMPLER_NODE]["text"]
    return text


def check_plain_after_ralu_matches_a_fresh_server(comfy_host, fresh_host, models, prefix, seed=77, **case):
    """Call right after a RALU run of `ralu_prompt(models, **case)` on comfy_host: a plain KSampler on
    the model that run sampled with (cached by the server) must give, bit for bit, the latent the same
    prompt gives on `fresh_host`, where RALU never ran: RALU leaves the shared model as it found it.
    A seed not used before on comfy_host keeps the server from answering from its cache."""
    import torch

    after = comfy_host.run(plain_prompt(models, seed=seed, prefix=f"{prefix}_plain_after_ralu", **case))
    assert not executed(after, "1"), "the plain run must reuse the model object RALU sampled with"
    fresh_host.run(plain_prompt(models, seed=seed, prefix=f"{prefix}_plain_fresh", **case))
    reference = saved_latent(fresh_host, f"{prefix}_plain_fresh")
    assert torch.equal(saved_latent(comfy_host, f"{prefix}_plain_after_ralu"), reference)
