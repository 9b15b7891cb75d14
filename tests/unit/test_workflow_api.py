"""scripts/workflow_api.py without a server: ComfyUI's graph semantics on a toy graph, model swaps."""

import json

import pytest

from scripts.workflow_api import (
    MODE_ALWAYS,
    MODE_BYPASS,
    MODE_NEVER,
    WorkflowError,
    replacements_for_test_models,
    substitute,
    to_api,
)

TOY_INFO = {
    "Src": {
        "input": {"required": {"seed": ["INT", {"control_after_generate": True, "max": 10}]}},
        "input_order": {"required": ["seed"]},
        "output": ["IMAGE"],
    },
    "Mid": {
        "input": {
            "required": {"image": ["IMAGE", {}], "scale": ["FLOAT", {}]},
            "optional": {"mode": [["a", "b"], {}]},
        },
        "input_order": {"required": ["image", "scale"], "optional": ["mode"]},
        "output": ["IMAGE"],
    },
    "Sink": {"input": {"required": {"images": ["IMAGE", {}], "name": ["STRING", {}]}}, "output": []},
}


def toy(mid_mode: int, via_reroute: bool = False, primitive: bool = False) -> dict:
    def node(id_, type_, mode=0, inputs=(), values=()):
        return {
            "id": id_,
            "type": type_,
            "mode": mode,
            "pos": [0, 0],
            "size": [10, 10],
            "inputs": list(inputs),
            "outputs": [{"name": "out", "type": "IMAGE", "links": []}],
            "widgets_values": list(values),
        }

    nodes = [
        node(1, "Src", values=[7, "randomize"]),
        node(
            2,
            "Mid",
            mid_mode,
            [
                {"name": "image", "type": "IMAGE", "link": 1},
                {
                    "name": "scale",
                    "type": "FLOAT",
                    "link": 4 if primitive else None,
                    "widget": {"name": "scale"},
                },
            ],
            [0.5, "b"],
        ),
        node(
            3,
            "Sink",
            inputs=[{"name": "images", "type": "IMAGE", "link": 3 if via_reroute else 2}],
            values=["x"],
        ),
        node(4, "Reroute", inputs=[{"name": "", "type": "*", "link": 2}]),
        node(5, "PrimitiveNode", values=[2.5, "fixed"]),
        node(6, "Note", values=["hello"]),
    ]
    links = [
        [1, 1, 0, 2, 0, "IMAGE"],
        [2, 2, 0, 3 if not via_reroute else 4, 0, "IMAGE"],
        [3, 4, 0, 3, 0, "IMAGE"],
        [4, 5, 0, 2, 1, "FLOAT"],
    ]
    return {"nodes": nodes, "links": links, "groups": []}


def test_converter_follows_comfyui_semantics():
    prompt = to_api(toy(MODE_ALWAYS), TOY_INFO, keep_meta=False)
    assert prompt == {
        "1": {"class_type": "Src", "inputs": {"seed": 7}},  # "randomize" is the seed's control widget
        "2": {"class_type": "Mid", "inputs": {"image": ["1", 0], "scale": 0.5, "mode": "b"}},
        "3": {"class_type": "Sink", "inputs": {"images": ["2", 0], "name": "x"}},
    }
    # bypassed: the IMAGE input passes through to the IMAGE output
    assert to_api(toy(MODE_BYPASS), TOY_INFO)["3"]["inputs"]["images"] == ["1", 0]
    # muted: the node and the input fed by it are left out
    muted = to_api(toy(MODE_NEVER), TOY_INFO)
    assert "2" not in muted and "images" not in muted["3"]["inputs"]
    # a reroute is followed; a primitive's value replaces the widget it feeds
    assert to_api(toy(MODE_ALWAYS, via_reroute=True), TOY_INFO)["3"]["inputs"]["images"] == ["2", 0]
    assert to_api(toy(MODE_ALWAYS, primitive=True), TOY_INFO)["2"]["inputs"]["scale"] == 2.5


def test_substitute_swaps_the_stock_models_for_the_test_models():
    prompt = {
        "1": {
            "class_type": "UNETLoader",
            "inputs": {"unet_name": "flux1-dev.safetensors", "weight_dtype": "default"},
        },
        "2": {
            "class_type": "DualCLIPLoader",
            "inputs": {
                "clip_name1": "t5xxl_fp16.safetensors",
                "clip_name2": "clip_l.safetensors",
                "type": "flux",
                "device": "default",
            },
        },
        "3": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
        "4": {
            "class_type": "EmptySD3LatentImage",
            "inputs": {"width": 1024, "height": 1024, "batch_size": 1},
        },
        "5": {"class_type": "KSampler", "inputs": {"seed": 3, "steps": 50}},
    }
    out = substitute(prompt, replacements_for_test_models(256, 192, steps=4))
    assert out["1"]["inputs"]["unet_name"] == "ralu_test_flux_dev.safetensors"
    assert out["2"] == {
        "class_type": "CLIPLoader",
        "inputs": {"clip_name": "ralu_test_clip_l.safetensors", "type": "sd3", "device": "default"},
    }
    assert out["3"]["inputs"]["vae_name"] == "taef1"
    assert out["4"]["inputs"] == {"width": 256, "height": 192, "batch_size": 1}
    assert out["5"]["inputs"] == {"seed": 3, "steps": 4}
    assert prompt["2"]["class_type"] == "DualCLIPLoader"  # the input is not changed
    assert json.loads(json.dumps(out)) == out


def sd3_checkpoint_prompt() -> dict:
    """ComfyUI's SD3 example as an API prompt: one checkpoint's MODEL, CLIP and VAE feed the graph."""
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd3_medium.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "3": {
            "class_type": "KSampler",
            "inputs": {"model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "seed": 1, "steps": 28},
        },
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    }


def test_substitute_splits_a_checkpoint_loader_into_the_test_models_loaders():
    prompt = sd3_checkpoint_prompt()
    out = substitute(prompt, replacements_for_test_models(256, 256, model="sd3", steps=2))
    assert out["4"] == {
        "class_type": "UNETLoader",
        "inputs": {"weight_dtype": "default", "unet_name": "ralu_test_sd3.safetensors"},
    }
    # New ids after the highest one; every use of the checkpoint's CLIP / VAE output follows it.
    assert out["9"] == {
        "class_type": "CLIPLoader",
        "inputs": {"device": "default", "clip_name": "ralu_test_clip_l.safetensors", "type": "sd3"},
    }
    assert out["10"] == {"class_type": "VAELoader", "inputs": {"vae_name": "taesd3"}}
    assert out["6"]["inputs"]["clip"] == out["7"]["inputs"]["clip"] == ["9", 0]
    assert out["8"]["inputs"]["vae"] == ["10", 0]
    assert out["3"]["inputs"]["model"] == ["4", 0] and out["3"]["inputs"]["steps"] == 2
    assert prompt == sd3_checkpoint_prompt()  # the input is not changed
    assert json.loads(json.dumps(out)) == out


def test_a_checkpoint_loader_stays_without_model_replacements():
    out = substitute(sd3_checkpoint_prompt(), {"width": 512, "height": 512, "steps": 1})
    assert out["4"] == sd3_checkpoint_prompt()["4"] and set(out) == set(sd3_checkpoint_prompt())


def test_a_checkpoint_loader_needs_all_three_model_replacements():
    with pytest.raises(
        WorkflowError, match=r"CheckpointLoaderSimple .* together with \['clip', 'unet_name', "
    ):
        substitute(sd3_checkpoint_prompt(), {"vae_name": "taesd3"})


def test_test_models_by_family():
    assert replacements_for_test_models(64, 32)["unet_name"] == "ralu_test_flux_dev.safetensors"
    sd3 = replacements_for_test_models(64, 32, model="sd3")
    assert (sd3["unet_name"], sd3["vae_name"], sd3["width"], sd3["height"]) == (
        "ralu_test_sd3.safetensors",
        "taesd3",
        64,
        32,
    )
    schnell = replacements_for_test_models(64, 32, model="flux_schnell")
    assert (schnell["unet_name"], schnell["vae_name"]) == ("ralu_test_flux_schnell.safetensors", "taef1")
    with pytest.raises(WorkflowError, match=r"model \('sdxl'\) must be one of flux, flux_schnell, sd3"):
        replacements_for_test_models(model="sdxl")
