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


def _flux_like(drop=(), **changes):
    """FLUX.1-dev's config as ComfyUI's loader detects it, with another family's changes."""
    config = dict(
        in_channels=16, out_channels=16, vec_in_dim=768, context_in_dim=4096, hidden_size=3072,
        mlp_ratio=4.0, num_heads=24, depth=19, depth_single_blocks=38, axes_dim=[16, 56, 56],
        theta=10000, patch_size=2, qkv_bias=True,
    )  # fmt: skip
    config.update(changes)
    return {k: v for k, v in config.items() if k not in drop}


_UNET = dict(
    use_checkpoint=False, image_size=32, out_channels=4, use_spatial_transformer=True, legacy=False,
    in_channels=4, model_channels=320, use_temporal_attention=False, use_temporal_resblock=False,
)  # fmt: skip
# Each format: ComfyUI's supported_models class and the unet config its loader detects for the
# released checkpoint (comfy/model_detection.py), so the model is the class a real file loads as.
MODEL_FORMATS = {
    "sd15": ("SD15", dict(
        _UNET, adm_in_channels=None, num_res_blocks=[2, 2, 2, 2], transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0],
        channel_mult=[1, 2, 4, 4], transformer_depth_middle=1, use_linear_in_transformer=False,
        context_dim=768, num_heads=8, transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
    )),
    "sdxl": ("SDXL", dict(
        _UNET, num_classes="sequential", adm_in_channels=2816, num_res_blocks=[2, 2, 2],
        transformer_depth=[0, 0, 2, 2, 10, 10], channel_mult=[1, 2, 4], transformer_depth_middle=10,
        use_linear_in_transformer=True, context_dim=2048, num_head_channels=64,
        transformer_depth_output=[0, 0, 0, 2, 2, 2, 10, 10, 10],
    )),
    "flux2": ("Flux2", _flux_like(
        image_model="flux2", axes_dim=[32, 32, 32, 32], num_heads=48, mlp_ratio=3.0, theta=2000,
        in_channels=128, out_channels=128, global_modulation=True, vec_in_dim=None, mlp_silu_act=True,
        qkv_bias=False, ops_bias=False, default_ref_method="index", ref_index_scale=10.0, patch_size=1,
        hidden_size=6144, context_in_dim=15360, depth=8, depth_single_blocks=48, guidance_embed=True,
    )),
    "chroma": ("Chroma", _flux_like(
        drop=("vec_in_dim",), image_model="chroma", in_channels=64, out_channels=64, in_dim=64, out_dim=3072,
        hidden_dim=5120, n_layers=5,
    )),
    "hidream": ("HiDream", dict(
        image_model="hidream", attention_head_dim=128, axes_dims_rope=[64, 32, 32],
        caption_channels=[4096, 4096], max_resolution=[128, 128], in_channels=16, llama_layers=[31] * 48,
        num_attention_heads=20, num_routed_experts=4, num_activated_experts=2, num_layers=16,
        num_single_layers=32, out_channels=16, patch_size=2, text_emb_dim=2048,
    )),
    "qwen_image": ("QwenImage", dict(image_model="qwen_image", in_channels=64, num_layers=60)),
}  # fmt: skip


# Fields newer ComfyUI's detection adds to these configs (0.33: txt_ids_dims, and Chroma's vec_in_dim),
# which its params classes require and 0.3.75's do not take: (params module, class, fields).
NEWER_FIELDS = {
    "flux2": ("comfy.ldm.flux.model", "FluxParams", {"txt_ids_dims": [3]}),
    "chroma": ("comfy.ldm.chroma.model", "ChromaParams", {"txt_ids_dims": [], "vec_in_dim": None}),
}


def config_for_this_host(format: str) -> dict:
    """The format's unet config with the fields this ComfyUI's params class has among NEWER_FIELDS."""
    import dataclasses
    import importlib

    config = dict(MODEL_FORMATS[format][1])
    if format in NEWER_FIELDS:
        module, params, fields = NEWER_FIELDS[format]
        known = {f.name for f in dataclasses.fields(getattr(importlib.import_module(module), params))}
        config.update({k: v for k, v in fields.items() if k in known})
    return config


class RALUTestModel:
    """A model of another family, as ComfyUI's loader makes it from a released checkpoint, with its
    weights on the meta device: enough for code that refuses it, and free to build."""

    CATEGORY = "RALU/testing"
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"format": (list(MODEL_FORMATS),)}}

    def make(self, format):
        import comfy.model_management as mm
        import comfy.model_patcher
        import comfy.supported_models

        name = MODEL_FORMATS[format][0]
        model_config = getattr(comfy.supported_models, name)(config_for_this_host(format))
        model_config.set_inference_dtype(torch.float32, None)
        model = model_config.get_model({}, device=torch.device("meta"))
        return (comfy.model_patcher.ModelPatcher(model, mm.get_torch_device(), mm.unet_offload_device()),)


class RALUTestLatent:
    """A zero LATENT of any shape (batch 0, other channel counts), which no stock node makes."""

    CATEGORY = "RALU/testing"
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        size = {"default": 32, "min": 1, "max": 512}
        return {
            "required": {
                "batch": ("INT", {"default": 1, "min": 0, "max": 16}),
                "channels": ("INT", {"default": 16, "min": 1, "max": 256}),
                "height": ("INT", size),
                "width": ("INT", size),
            }
        }

    def make(self, batch, channels, height, width):
        return ({"samples": torch.zeros(batch, channels, height, width)},)


class RALUTestConditioningOption:
    """Sets one option on every entry of a CONDITIONING, as the node that owns the option would (GLIGEN's
    "gligen" needs a GLIGEN model file, which the tests do not have)."""

    CATEGORY = "RALU/testing"
    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "apply"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"conditioning": ("CONDITIONING",), "option": (["gligen"],)}}

    def apply(self, conditioning, option):
        values = {"gligen": ("position", None, [])}
        return ([[c, {**options, option: values[option]}] for c, options in conditioning],)


class FaultyVAE:
    """A VAE whose decodes fail as `fault` says; everything else is the wrapped VAE's."""

    def __init__(self, vae, fault):
        self._vae, self._fault = vae, fault

    def __getattr__(self, name):
        return getattr(self._vae, name)

    def decode(self, samples, *args, **kwargs):
        import comfy.model_management

        if self._fault == "always tiled":
            # The pack's second try after running out of memory (comfy_glue.EDGE_DECODE_TILE).
            return self._vae.decode_tiled(samples, tile_x=16, tile_y=16, overlap=4)
        if self._fault == "interrupt":
            # As the /interrupt route does; ComfyUI's progress hook raises on it during a decode.
            comfy.model_management.interrupt_current_processing()
            comfy.model_management.throw_exception_if_processing_interrupted()
        if self._fault.startswith("out of memory"):
            raise comfy.model_management.OOM_EXCEPTION("RALU test: out of memory in decode")
        return self._vae.decode(samples, *args, **kwargs)

    def decode_tiled(self, samples, *args, **kwargs):
        import comfy.model_management

        if self._fault == "out of memory, tiled too":
            raise comfy.model_management.OOM_EXCEPTION("RALU test: out of memory in decode_tiled")
        return self._vae.decode_tiled(samples, *args, **kwargs)


class RALUTestFaultyVAE:
    CATEGORY = "RALU/testing"
    RETURN_TYPES = ("VAE",)
    FUNCTION = "wrap"
    DESCRIPTION = (
        "out of memory: decode raises ComfyUI's OOM exception, decode_tiled works; out of memory, tiled "
        "too: both raise it; interrupt: decode interrupts as ComfyUI's /interrupt does; always tiled: "
        "decode is the tiled decode the pack falls back to."
    )

    @classmethod
    def INPUT_TYPES(cls):
        faults = ["out of memory", "out of memory, tiled too", "interrupt", "always tiled"]
        return {"required": {"vae": ("VAE",), "fault": (faults,)}}

    def wrap(self, vae, fault):
        return (FaultyVAE(vae, fault),)


class InterruptAtCall:
    """An APPLY_MODEL wrapper: during model call number `call` (from 1), interrupts as /interrupt does."""

    def __init__(self, call):
        self.call, self.calls = call, 0

    def __call__(self, executor, *args, **kwargs):
        import comfy.model_management

        self.calls += 1
        out = executor(*args, **kwargs)
        if self.calls == self.call:
            comfy.model_management.interrupt_current_processing()
        return out


class RALUTestInterruptAtCall:
    """The model, interrupted as ComfyUI's /interrupt does during one chosen model call: the run stops
    at ComfyUI's next check, deterministically (0: never)."""

    CATEGORY = "RALU/testing"
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "call": ("INT", {"default": 1, "min": 0, "max": 1 << 20})}}

    def patch(self, model, call):
        import comfy.patcher_extension

        clone = model.clone()
        clone.add_wrapper_with_key(
            comfy.patcher_extension.WrappersMP.APPLY_MODEL, "ralu-test-interrupt", InterruptAtCall(call)
        )
        return (clone,)


class RALUTestRoutes:
    """Shows the HTTP routes the running server serves (method and path), one per line."""

    CATEGORY = "RALU/testing"
    RETURN_TYPES = ()
    FUNCTION = "list"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    @classmethod
    def IS_CHANGED(cls):
        return float("nan")  # the routes are read anew each time

    def list(self):
        import server

        routes = server.PromptServer.instance.app.router.routes()
        lines = sorted({f"{route.method} {route.resource.canonical}" for route in routes})
        return {"ui": {"text": lines}}


NODE_CLASS_MAPPINGS = {
    "RALUTestConditioning": RALUTestConditioning,
    "RALUTestRoutes": RALUTestRoutes,
    "RALUTestModel": RALUTestModel,
    "RALUTestLatent": RALUTestLatent,
    "RALUTestConditioningOption": RALUTestConditioningOption,
    "RALUTestFaultyVAE": RALUTestFaultyVAE,
    "RALUTestInterruptAtCall": RALUTestInterruptAtCall,
}
NODE_DISPLAY_NAME_MAPPINGS = {"RALUTestConditioning": "RALU Test Conditioning (random)"}
