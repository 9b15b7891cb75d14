"""API prompts for RALU KSampler on the test models, shared by the server and browser tests."""

PLAN_NODE, SAMPLER_NODE = "6", "8"


def ralu_prompt(models, seed=1, batch=1, cfg=1.0, preset="flux_7x", size=256, prefix="ralu"):
    return {
        "1": {
            "class_type": "UNETLoader",
            "inputs": {"unet_name": models.flux_dev, "weight_dtype": "default"},
        },
        "2": {
            "class_type": "RALUTestConditioning",
            "inputs": {"seed": 0, "tokens": 16, "family": "flux", "guidance": 3.5, "scale": 1.0},
        },
        "3": {
            "class_type": "RALUTestConditioning",
            "inputs": {"seed": 1, "tokens": 12, "family": "flux", "guidance": 3.5, "scale": 1.0},
        },
        "4": {
            "class_type": "EmptySD3LatentImage",
            "inputs": {"width": size, "height": size, "batch_size": batch},
        },
        "5": {"class_type": "VAELoader", "inputs": {"vae_name": models.taef1}},
        PLAN_NODE: {
            "class_type": "RALUStagePlanner",
            "inputs": {
                "preset": preset,
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
                "estimate_for": "flux",
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
