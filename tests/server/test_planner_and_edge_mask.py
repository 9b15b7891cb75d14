"""RALU Stage Planner and RALU Edge Mask in the real host, driven over its HTTP API."""

import numpy as np
import pytest
from PIL import Image

from tests.host import PromptFailed
from tests.prompts import PLAN_NODE, SAMPLER_NODE, ralu_prompt

NODE_IDS = {
    "RALUStagePlanner": "RALU Stage Planner",
    "RALUEdgeMask": "RALU Edge Mask",
    "RALUKSampler": "RALU KSampler",
}
SIZE = 256  # an 8x8 grid of 32-pixel cells
EDGE_CELLS = {(r, c) for r in range(2, 6) for c in range(2, 6)} - {(r, c) for r in (3, 4) for c in (3, 4)}


@pytest.fixture(scope="module")
def square_image(comfy_host) -> str:
    """A white square whose sides run through the middles of cells 2 and 5: its edges touch 12 cells."""
    pixels = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    pixels[80:176, 80:176] = 255
    comfy_host.input_dir.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(comfy_host.input_dir / "ralu_square.png")
    return "ralu_square.png"


def planner(preset="flux_4x", **custom):
    inputs = dict(
        preset=preset,
        n1=5,
        n2=6,
        n3=7,
        e1=0.3,
        e2=0.45,
        up_ratio=0.3,
        shifts="solve (NT-DM)",
        h1=3.0,
        h2=3.0,
        h3=3.0,
        z=6.0,
        estimate_for="flux",
        width=1024,
        height=1024,
    )
    inputs.update(custom)
    return {"class_type": "RALUStagePlanner", "inputs": inputs}


def planner_prompt(preset="flux_4x", **custom) -> dict:
    """The Planner as node "1", shown by ComfyUI's PreviewAny (an output node: the Planner is none)."""
    return {
        "1": planner(preset, **custom),
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    }


def edge_mask_prompt(image_name: str, plan=None, up_ratio=0.3) -> dict:
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": image_name}},
        "2": {
            "class_type": "RALUEdgeMask",
            "inputs": {"image": ["1", 0], "up_ratio": up_ratio, "faithful_gray": True, "tie_break_seed": 0},
        },
        "3": {"class_type": "MaskToImage", "inputs": {"mask": ["2", 0]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "ralu_mask"}},
    }
    if plan is not None:
        prompt["5"] = plan
        prompt["2"]["inputs"]["plan"] = ["5", 0]
    return prompt


def saved_image(comfy_host, entry) -> Image.Image:
    """The SaveImage node's picture (the Edge Mask node shows a preview of its own too)."""
    [image] = comfy_host.output_images(entry, ["4"])
    return image


def selected_cells(image: Image.Image) -> set:
    mask = np.asarray(image.convert("L")) > 127
    cells = mask.reshape(SIZE // 32, 32, SIZE // 32, 32)
    assert (cells.all(axis=(1, 3)) == cells.any(axis=(1, 3))).all(), "mask is not whole 32-pixel cells"
    rows, cols = np.nonzero(cells.any(axis=(1, 3)))
    return set(zip(rows.tolist(), cols.tolist()))


def test_the_pack_registers_its_nodes_with_tooltips(comfy_host):
    info = comfy_host.object_info()
    for node_id, display_name in NODE_IDS.items():
        node = info[node_id]
        assert node["display_name"] == display_name
        assert node["category"] == "sampling/RALU"
        for section in ("required", "optional"):
            for name, (_, options) in node["input"].get(section, {}).items():
                assert options.get("tooltip"), f"{node_id}.{name} has no tooltip"
    assert "IMPORT FAILED" not in comfy_host.log_text().split("ComfyUI-RALU")[0][-300:]


def test_edge_mask_marks_exactly_the_cells_on_the_edges(comfy_host, square_image):
    entry = comfy_host.run(edge_mask_prompt(square_image, up_ratio=12 / 64))
    image = saved_image(comfy_host, entry)
    assert image.size == (SIZE, SIZE)
    assert selected_cells(image) == EDGE_CELLS


def test_edge_mask_takes_the_ratio_from_a_plan(comfy_host, square_image):
    entry = comfy_host.run(edge_mask_prompt(square_image, plan=planner("flux_4x")))
    image = saved_image(comfy_host, entry)
    cells = selected_cells(image)
    assert len(cells) == int(64 * 0.3)
    assert cells >= EDGE_CELLS


def test_planner_shows_its_summary(comfy_host, square_image):
    prompt = edge_mask_prompt(
        square_image, plan=planner("custom", n1=4, n2=4, n3=6, e1=0.25, e2=0.5, up_ratio=0.25)
    )
    entry = comfy_host.run(prompt)
    [summary] = entry["outputs"]["5"]["text"]
    assert entry["outputs"]["2"]["images"], "the Edge Mask shows its mask on the node"
    assert "RALU plan 'custom' for FLUX models: 14 steps" in summary
    assert "stage 2 (mixed): 4 steps" in summary
    assert "estimated speed-up vs 50 steps of FLUX.1-dev at 1024x1024" in summary


def test_an_invalid_custom_plan_is_rejected_before_anything_runs(comfy_host, square_image):
    status, body = comfy_host.submit(edge_mask_prompt(square_image, plan=planner("custom", e1=0.5, e2=0.4)))
    assert status == 400
    message = str(body["node_errors"]["5"])
    assert "e2 (0.4) must be greater than e1 (0.5)" in message


def planner_errors(comfy_host, **inputs) -> list[dict]:
    """The Planner's entries in /prompt's node_errors."""
    status, body = comfy_host.submit(planner_prompt(**inputs))
    assert status == 400, body
    assert list(body["node_errors"]) == ["1"]
    return body["node_errors"]["1"]["errors"]


@pytest.mark.parametrize(
    ("inputs", "name", "text"),
    [
        (
            {"preset": "flux_9x"},
            "preset",
            "Value not in list: preset: 'flux_9x' not in ['flux_4x', 'flux_5x', 'flux_7x', 'flux_schnell', "
            "'sd3_2x', 'sd3_3x', 'sd35_turbo', 'custom']",
        ),
        (
            {"estimate_for": "sdxl"},
            "estimate_for",
            "Value not in list: estimate_for: 'sdxl' not in ['flux', 'flux_schnell', 'sd3', "
            "'sd3.5_large', 'sd3.5_large_turbo', 'sd3.5_medium']",
        ),
        ({"width": 0}, "width", "Value 0 smaller than min of 256: width"),
        ({"preset": "custom", "n1": 500}, "n1", "Value 500 bigger than max of 200: n1"),
        ({"preset": "custom", "shifts": "manual", "h1": 50}, "h1", "Value 50.0 bigger than max of 10.0: h1"),
        ({"preset": "custom", "shifts": "manual", "z": 1}, "z", "Value 1.0 smaller than min of 2.0: z"),
        ({"preset": "custom", "up_ratio": 2}, "up_ratio", "Value 2.0 bigger than max of 1.0: up_ratio"),
    ],
)
def test_a_value_out_of_range_or_options_gets_one_error_from_comfyui(comfy_host, inputs, name, text):
    [error] = planner_errors(comfy_host, **inputs)
    assert error["extra_info"]["input_name"] == name
    assert f"{error['message']}: {error['details']}" == text


@pytest.mark.parametrize(
    ("inputs", "text"),
    [
        (
            {"preset": "custom", "e1": 0.5, "e2": 0.4},
            "e2 (0.4) must be greater than e1 (0.5): the stage ends are progress values that strictly "
            "increase (the custom plan's stage ends)",
        ),
        ({"preset": "custom", "e1": 0.3, "e2": 0.3}, "e2 (0.3) must be greater than e1 (0.3)"),
        # ComfyUI keeps unused widgets in their range too, and cannot tell validate_inputs the preset
        # without a third copy of the message (see RALUStagePlanner.validate_inputs).
        ({"preset": "flux_4x", "e1": 0.5, "e2": 0.4}, "e2 (0.4) must be greater than e1 (0.5)"),
        (
            {"preset": "custom", "e1": 0},
            "e1 (0.0) must be between 0.01 and 0.99: the progress at which stage 1 ends",
        ),
        (
            {"preset": "custom", "e2": 1.0},
            "e2 (1.0) must be between 0.01 and 0.99: the progress at which stage 2 ends",
        ),
    ],
)
def test_bad_stage_ends_get_one_message_under_e1_and_e2(comfy_host, inputs, text):
    # ComfyUI files a failing validate_inputs once under each input it names: here e1 and e2, the two
    # values of the rule, and nothing else.
    errors = planner_errors(comfy_host, **inputs)
    assert sorted(e["extra_info"]["input_name"] for e in errors) == ["e1", "e2"]
    assert {e["type"] for e in errors} == {"custom_validation_failed"}
    details = {e["details"].split(" - ", 1)[1] for e in errors}
    assert len(details) == 1
    assert text in details.pop()


def test_a_good_custom_plan_is_accepted_and_carries_its_family(comfy_host):
    custom = dict(n1=3, n2=3, n3=6, e1=0.25, e2=0.3, up_ratio=0.2, shifts="manual", h1=6.0, h2=2.5, h3=2.0)
    entry = comfy_host.run(planner_prompt("custom", **custom, z=6.0, estimate_for="sd3"))
    [summary] = entry["outputs"]["1"]["text"]
    assert "RALU plan 'custom' for SD3 models: 12 steps" in summary
    assert "estimated speed-up vs 28 steps of SD3 Medium at 1024x1024" in summary


@pytest.mark.parametrize(
    ("inputs", "first_line", "estimate"),
    [
        (
            {"preset": "sd35_turbo"},
            "RALU plan 'sd35_turbo' for SD3 models: 4 steps",
            "estimated speed-up vs 4 steps of SD3.5 Large Turbo at 1024x1024",
        ),
        (
            {"preset": "custom", "n1": 1, "estimate_for": "sd3.5_medium"},
            "RALU plan 'custom' for SD3 models: 14 steps",
            "estimated speed-up vs 40 steps of SD3.5 Medium at 1024x1024",
        ),
    ],
)
def test_the_estimate_is_for_the_model_the_plan_names(comfy_host, inputs, first_line, estimate):
    entry = comfy_host.run(planner_prompt(**inputs, shifts="manual"))
    [summary] = entry["outputs"]["1"]["text"]
    assert summary.startswith(first_line)
    assert estimate in summary


def test_linked_stage_ends_are_checked_when_the_planner_runs(comfy_host):
    prompt = planner_prompt("custom", e1=["3", 0], e2=0.4)
    prompt["3"] = {"class_type": "PrimitiveFloat", "inputs": {"value": 0.5}}
    status, body = comfy_host.submit(prompt)
    assert status == 200, body
    with pytest.raises(PromptFailed, match=r"e2 \(0.4\) must be greater than e1 \(0.5\)"):
        comfy_host.wait(body["prompt_id"])


def sampler_refusal(comfy_host, prompt) -> str:
    """The message RALU KSampler stopped the queued prompt with, checked to come before sampling."""
    status, body = comfy_host.submit(prompt)
    assert status == 200, body
    with pytest.raises(PromptFailed) as failure:
        comfy_host.wait(body["prompt_id"])
    [error] = [data for kind, data in failure.value.entry["status"]["messages"] if kind == "execution_error"]
    assert error["node_id"] == SAMPLER_NODE
    assert not any("sample_custom" in line for line in error["traceback"]), "refused before sampling"
    return error["exception_message"].strip()


@pytest.mark.parametrize(
    ("plan", "name"),
    [({"preset": "sd3_3x"}, "sd3_3x"), ({"preset": "custom", "n1": 1, "estimate_for": "sd3"}, "custom")],
)
def test_a_plan_for_sd3_is_refused_on_flux_before_sampling(comfy_host, test_models, plan, name):
    prompt = ralu_prompt(test_models, size=128, prefix="wrong_family")
    prompt[PLAN_NODE]["inputs"].update(plan)
    assert sampler_refusal(comfy_host, prompt) == (
        f"This plan ({name}) is for SD3 models, but the connected model is FLUX: choose one of its presets "
        "(flux_4x, flux_5x, flux_7x, flux_schnell) or a custom plan whose estimate_for is a FLUX model."
    )


@pytest.mark.parametrize(
    ("unet", "plan", "message"),
    [
        (
            "flux_schnell",
            {"preset": "flux_4x"},
            "This plan (flux_4x) is for FLUX.1-dev, but the connected FLUX model is without a guidance "
            "input, as FLUX.1-schnell, and the plan's schedule is not its: choose a FLUX.1-schnell preset "
            "(flux_schnell), or a custom plan with estimate_for flux_schnell.",
        ),
        (
            "flux_dev",
            {"preset": "custom", "n1": 1, "estimate_for": "flux_schnell"},
            "This plan (custom) is for FLUX.1-schnell, but the connected FLUX model is guidance-distilled, "
            "as FLUX.1-dev, and the plan's schedule is not its: choose a FLUX.1-dev preset (flux_4x, "
            "flux_5x, flux_7x), or a custom plan with estimate_for flux.",
        ),
    ],
    ids=["dev_preset_on_schnell", "schnell_plan_on_dev"],
)
def test_a_plan_for_the_other_flux_is_refused_before_sampling(comfy_host, test_models, unet, plan, message):
    prompt = ralu_prompt(test_models, size=128, prefix="wrong_flux", unet=getattr(test_models, unet))
    prompt[PLAN_NODE]["inputs"].update(plan)
    assert sampler_refusal(comfy_host, prompt) == message


def test_a_graph_with_a_missing_model_file_gets_comfyuis_error_not_a_success(comfy_host, test_models):
    """ComfyUI runs every output node that validates and reports the prompt a success: were the Planner
    an output node, this graph would "succeed" with the Planner alone and no picture."""
    assert comfy_host.object_info("RALUStagePlanner")["output_node"] is False
    prompt = ralu_prompt(test_models, size=128, prefix="missing_model")
    prompt["1"]["inputs"]["unet_name"] = "flux1-dev.safetensors"  # not on the test server
    status, body = comfy_host.submit(prompt)
    assert status == 400, body
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    [loader_error] = body["node_errors"]["1"]["errors"]
    assert loader_error["type"] == "value_not_in_list"
    assert "flux1-dev.safetensors" in loader_error["details"]
    assert PLAN_NODE not in body["node_errors"]
