"""Test-only ComfyUI nodes (never shipped): the `comfy_host` fixture links this folder into the test
server's custom_nodes. It is loaded by ComfyUI as a custom node pack, not imported by pytest.
"""

import torch

# Context widths and pooled sizes of the text encoders each model family expects.
FAMILIES = {
    "flux": {"context": 4096, "pooled": 768, "guidance": True},
    "sd3": {"context": 4096, "pooled": 2048, "guidance": False},
}


class RALUTestConditioning:
    """Random CONDITIONING of the right shapes: a light stand-in for a text encoder in tests."""

    CATEGORY = "RALU/testing"
    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "make"
    DESCRIPTION = "Seeded random conditioning shaped like FLUX's (T5 + CLIP-L) or SD3's text encoders."

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFF}),
                "tokens": ("INT", {"default": 77, "min": 1, "max": 512}),
                "family": (list(FAMILIES), {"default": "flux"}),
                "guidance": ("FLOAT", {"default": 3.5, "min": 0.0, "max": 100.0, "step": 0.1}),
                "scale": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 100.0, "step": 0.01}),
            }
        }

    def make(self, seed, tokens, family, guidance, scale):
        shape = FAMILIES[family]
        gen = torch.Generator().manual_seed(seed)
        context = torch.randn((1, tokens, shape["context"]), generator=gen) * scale
        pooled = torch.randn((1, shape["pooled"]), generator=gen) * scale
        extra = {"pooled_output": pooled}
        if shape["guidance"]:
            extra["guidance"] = guidance
        return ([[context, extra]],)


NODE_CLASS_MAPPINGS = {"RALUTestConditioning": RALUTestConditioning}
NODE_DISPLAY_NAME_MAPPINGS = {"RALUTestConditioning": "RALU Test Conditioning (random)"}
