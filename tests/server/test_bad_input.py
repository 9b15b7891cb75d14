"""Every bad input to RALU KSampler, sent over the HTTP API of a real server: the table below is the
list of inputs tried, each with what a person gets (docs/errors.md shows the same table).

Each row edits the prompt of tests/prompts.ralu_prompt (FLUX, flux_7x, 128x128) and expects one of:
- QUEUE: POST /prompt refuses it, with the message under the node that has the bad value (nothing
  downstream of that node runs);
- BEFORE: the prompt runs and fails at `node` with the message, before anything is sampled (the
  traceback never reaches ComfyUI's sample_custom, so no model was called);
- RUNS: RALU KSampler samples it (a supported input), and `check` looks at what came out.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from tests.host import PromptFailed
from tests.prompts import PLAN_NODE, SAMPLER_NODE, ralu_prompt, stage_report

SIZE = 128
QUEUE, BEFORE, RUNS = "refused at queue time", "refused before sampling", "runs"
LOW_RES_TOKENS = (SIZE // 32) ** 2
DEFAULT_REPORT = f"tokens per stage: {LOW_RES_TOKENS}, {LOW_RES_TOKENS + 3 * 1}, {4 * LOW_RES_TOKENS}"


@dataclass(frozen=True)
class Case:
    edit: Callable[[dict, object], None]  # changes the prompt (and the test models)
    outcome: str
    text: str = ""  # the message, or a part of it
    node: str = SAMPLER_NODE  # the node the message is under
    check: Callable[[object, dict], None] | None = None  # RUNS: (host, /history entry)


def add(prompt: dict, node_id: str, class_type: str, **inputs) -> list:
    prompt[node_id] = {"class_type": class_type, "inputs": inputs}
    return [node_id, 0]


def sampler(prompt: dict) -> dict:
    return prompt[SAMPLER_NODE]["inputs"]


def custom_plan(**values):
    def edit(prompt, models):
        prompt[PLAN_NODE]["inputs"].update(preset="custom", shifts="manual", **values)

    return edit


def model(format_: str):
    def edit(prompt, models):
        sampler(prompt)["model"] = add(prompt, "20", "RALUTestModel", format=format_)

    return edit


def latent(class_type: str, **inputs):
    def edit(prompt, models):
        sampler(prompt)["latent_image"] = add(prompt, "20", class_type, **inputs)

    return edit


def latent_through(class_type: str, link: str, source: tuple[str, dict], **inputs):
    """The latent from a `class_type` node whose input `link` comes from a (class_type, inputs) node."""

    def edit(prompt, models):
        inputs[link] = add(prompt, "21", source[0], **source[1])
        sampler(prompt)["latent_image"] = add(prompt, "20", class_type, **inputs)

    return edit


def conditioning(class_type: str, which="positive", **inputs):
    def edit(prompt, models):
        source = sampler(prompt)[which]
        if class_type == "ConditioningSetMask":
            inputs["mask"] = add(prompt, "21", "SolidMask", value=1.0, width=SIZE, height=SIZE)
        if class_type == "ReferenceLatent":
            inputs["latent"] = ["4", 0]
        sampler(prompt)[which] = add(prompt, "20", class_type, conditioning=source, **inputs)

    return edit


def vae(name):
    def edit(prompt, models):
        if name is None:
            del sampler(prompt)["vae"]
        else:
            sampler(prompt)["vae"] = add(prompt, "20", "VAELoader", vae_name=getattr(models, name))

    return edit


def mask_nodes(prompt: dict, value=1.0, width=SIZE, height=SIZE, copies=1) -> list:
    """A SolidMask, repeated `copies` times in a batch: the link to the MASK."""
    mask = add(prompt, "20", "SolidMask", value=value, width=width, height=height)
    if copies > 1:
        image = add(prompt, "21", "MaskToImage", mask=mask)
        image = add(prompt, "22", "RepeatImageBatch", image=image, amount=copies)
        mask = add(prompt, "23", "ImageToMask", image=image, channel="red")
    return mask


def force_mask(batch=1, **mask):
    def edit(prompt, models):
        prompt["4"]["inputs"]["batch_size"] = batch
        sampler(prompt)["force_mask"] = mask_nodes(prompt, **mask)

    return edit


def edge_mask_with(**mask):
    """In place of the whole prompt: RALU Edge Mask on two 128x128 pictures, with a force_mask."""

    def edit(prompt, models):
        prompt.clear()
        image = add(prompt, "1", "EmptyImage", width=SIZE, height=SIZE, batch_size=2, color=0)
        forced = mask_nodes(prompt, **mask)
        edges = add(
            prompt, "2", "RALUEdgeMask", image=image, force_mask=forced, up_ratio=0.3, faithful_gray=True,
            tie_break_seed=0,
        )  # fmt: skip
        add(prompt, "3", "SaveImage", images=add(prompt, "4", "MaskToImage", mask=edges), filename_prefix="m")

    return edit


def early_fraction(host, entry) -> float:
    [mask] = host.output_images(entry, ["13"])
    return float((np.asarray(mask.convert("L")) > 127).mean())


def upsampled_all_early(host, entry):
    assert early_fraction(host, entry) == 1.0
    assert f"tokens per stage: {LOW_RES_TOKENS}, {4 * LOW_RES_TOKENS}," in stage_report(entry)


def default_selection(host, entry):
    assert stage_report(entry).startswith(DEFAULT_REPORT)
    assert early_fraction(host, entry) == pytest.approx(1 / LOW_RES_TOKENS)


def full_size(host, entry):
    [image] = host.output_images(entry, ["11"])
    assert image.size == (SIZE, SIZE)
    default_selection(host, entry)


MODELS_SUPPORTED = (
    "RALU KSampler supports FLUX.1 models (dev, schnell and their fine-tunes) and LongCat-Image and "
    "Ovis-Image, which share FLUX.1's architecture (16-channel latents, 2x2 patches); SD3 and SD3.5 models "
    "(Medium, Large, Large Turbo: 16-channel latents, 2x2 patches). "
)
PER_32 = "RALU needs an image whose width and height are multiples of 32 pixels"

# The table: what was tried, and what a person gets.
CASES = {
    # Plans (RALU Stage Planner)
    "plan: stage ends not increasing": Case(
        custom_plan(e1=0.5, e2=0.4), QUEUE, "e2 (0.4) must be greater than e1 (0.5)", PLAN_NODE
    ),
    "plan: stage 2 ending at 1": Case(
        custom_plan(e2=1.0), QUEUE, "e2 (1.0) must be between 0.01 and 0.99", PLAN_NODE
    ),
    "plan: last end not 1": pytest.param(
        None,
        marks=pytest.mark.skip(
            reason="the Planner has no input for it (stage 3 always ends at 1); make_plan refuses "
            "other ends: tests/unit/test_properties.py::test_every_invalid_variant_of_a_valid_plan_is_refused"
        ),
    ),
    "plan: zero steps": Case(custom_plan(n2=0), QUEUE, "Value 0 smaller than min of 1: n2", PLAN_NODE),
    "plan: up_ratio above 1": Case(
        custom_plan(up_ratio=1.5), QUEUE, "Value 1.5 bigger than max of 1.0: up_ratio", PLAN_NODE
    ),
    "plan: up_ratio below 0": Case(
        custom_plan(up_ratio=-0.1), QUEUE, "Value -0.1 smaller than min of 0.0: up_ratio", PLAN_NODE
    ),
    "plan: NaN shift": Case(
        custom_plan(h1=math.nan),
        BEFORE,
        "h1 (nan) must be a number greater than 0: it is the time shift of stage 1",
        PLAN_NODE,
    ),
    "plan: infinite shift": Case(
        custom_plan(h3=math.inf), QUEUE, "Value inf bigger than max of 10.0: h3", PLAN_NODE
    ),
    "plan: NaN z": Case(custom_plan(z=math.nan), BEFORE, "z (nan) must be at least 2", PLAN_NODE),
    "plan: up_ratio 1 (every cell early)": Case(custom_plan(up_ratio=1.0), RUNS, check=upsampled_all_early),
    # Latents
    "latent: width not a multiple of 32": Case(
        latent("EmptySD3LatentImage", width=144, height=SIZE, batch_size=1),
        BEFORE,
        f"{PER_32} (it halves the latent and then packs 2x2 patches); got 144x128. Use a width of 128 or "
        "160 and a height of 128.\n",
    ),
    "latent: under one low-res token (16x16)": Case(
        latent("EmptySD3LatentImage", width=16, height=16, batch_size=1),
        BEFORE,
        f"{PER_32} (it halves the latent and then packs 2x2 patches); got 16x16. Use a width of 32 and a "
        "height of 32.",
    ),
    "latent: batch 0 from EmptySD3LatentImage": Case(
        latent("EmptySD3LatentImage", width=SIZE, height=SIZE, batch_size=0),
        QUEUE,
        "Value 0 smaller than min of 1: batch_size",
        "20",
    ),
    "latent: batch 0": Case(
        latent("RALUTestLatent", batch=0, channels=16, height=16, width=16),
        BEFORE,
        "The latent holds no images (batch size 0): connect a latent of batch size 1 or more.",
    ),
    "latent: SD1.5 / SDXL format (EmptyLatentImage, 4 channels)": Case(
        latent("EmptyLatentImage", width=SIZE, height=SIZE, batch_size=1), RUNS, check=full_size
    ),
    "latent: SD3 format (EmptySD3LatentImage)": Case(lambda prompt, models: None, RUNS, check=full_size),
    "latent: FLUX.2 format (EmptyFlux2LatentImage, 128 channels at 1/16)": Case(
        latent("EmptyFlux2LatentImage", width=SIZE, height=SIZE, batch_size=1),
        BEFORE,
        "This latent has 128 channels, a format of another model family (FLUX.2's, for one, has 128 at "
        "1/16 of the picture's size); the model samples 16-channel latents at 1/8.",
    ),
    "latent: a picture (img2img)": Case(
        latent_through(
            "VAEEncode",
            "pixels",
            ("EmptyImage", dict(width=SIZE, height=SIZE, batch_size=1, color=99)),
            vae=["5", 0],
        ),
        BEFORE,
        "RALU KSampler generates from pure noise, so it would ignore the picture in this latent.",
    ),
    "latent: inpainting noise mask": Case(
        latent_through(
            "SetLatentNoiseMask",
            "mask",
            ("SolidMask", dict(value=1.0, width=SIZE, height=SIZE)),
            samples=["4", 0],
        ),
        BEFORE,
        "RALU KSampler does not inpaint: the latent has a noise mask",
    ),
    # Models
    **{
        f"model: {label}": Case(model(format_), BEFORE, f"{MODELS_SUPPORTED}This model is {name}.")
        for label, format_, name in (
            ("SD1.5", "sd15", "SD15"),
            ("SDXL", "sdxl", "SDXL"),
            ("Chroma", "chroma", "Chroma"),
            ("FLUX.2", "flux2", "Flux2"),
            ("HiDream", "hidream", "HiDream"),
            ("Qwen-Image", "qwen_image", "QwenImage"),
        )
    },
    "model: FLUX Kontext (a FLUX.1 model with ReferenceLatent)": Case(
        conditioning("ReferenceLatent"),
        BEFORE,
        "RALU KSampler cannot use the positive prompt's reference images (FLUX Kontext's ReferenceLatent): "
        "they sit at full-resolution positions that the low-resolution stages do not share.",
    ),
    "model: LongCat": pytest.param(
        None,
        marks=pytest.mark.skip(
            reason="supported where ComfyUI has it (0.33; 0.3.75 has no LongCat-Image model class): "
            "tests/inprocess/test_stage_math.py runs a tiny LongCat-Image in-process (no loader-detectable "
            "file here)"
        ),
    ),
    # Conditioning
    "conditioning: ControlNet": pytest.param(
        None,
        marks=pytest.mark.skip(
            reason="supported (stages 1 and 3); no loader-detectable tiny FLUX ControlNet file exists, so "
            "tests/inprocess/test_flux_sampling.py::test_controlnet_guides_the_grid_stages_and_sits_out_"
            "stage_2 runs it in-process"
        ),
    ),
    "conditioning: area": Case(
        conditioning("ConditioningSetArea", width=64, height=64, x=0, y=0, strength=1.0),
        BEFORE,
        "RALU KSampler cannot use the positive prompt's area conditioning (ConditioningSetArea): it needs "
        "a pixel grid, which stage 2 does not have. Remove it, or use a plain KSampler.",
    ),
    "conditioning: area on the negative prompt": Case(
        conditioning("ConditioningSetArea", "negative", width=64, height=64, x=0, y=0, strength=1.0),
        BEFORE,
        "RALU KSampler cannot use the negative prompt's area conditioning",
    ),
    "conditioning: mask": Case(
        conditioning("ConditioningSetMask", strength=1.0, set_cond_area="default"),
        BEFORE,
        "masked conditioning (ConditioningSetMask): it needs a pixel grid",
    ),
    "conditioning: GLIGEN": Case(
        conditioning("RALUTestConditioningOption", option="gligen"),
        BEFORE,
        "GLIGEN boxes: they need a pixel grid, which stage 2 does not have",
    ),
    # VAEs (edge_source "vae")
    "vae: missing": Case(
        vae(None), BEFORE, "edge_source 'vae' needs a VAE: connect one, or choose edge_source 'latent'."
    ),
    "vae: another family's (taesd3 on FLUX)": Case(
        vae("taesd3"),
        BEFORE,
        "This tiny VAE was loaded for latents with scale 1.531 and shift 0.0609 (taesd3 is SD3's), but "
        "the model's latents have scale 0.3611 and shift 0.1159: connect the model's own VAE "
        "(ae.safetensors or taef1 for FLUX).",
    ),
    "vae: another channel count (taesd, 4 channels)": Case(
        vae("taesd"),
        BEFORE,
        "This VAE decodes 4-channel latents, but the model makes 16-channel ones: connect the model's own "
        "VAE (ae.safetensors or taef1 for FLUX).",
    ),
    # force_mask
    "mask: another shape": Case(
        force_mask(width=SIZE * 2),
        BEFORE,
        "force_mask is 256x128 but the picture is 128x128: connect a mask of the picture's size (or its "
        "shape, at another resolution).",
    ),
    "mask: batch mismatch (3 masks, 2 images)": Case(
        force_mask(copies=3, batch=2),
        BEFORE,
        "force_mask holds 3 masks for a batch of 2 images: connect one mask for all of them, or one per "
        "image.",
    ),
    "mask: another shape, on RALU Edge Mask": Case(
        edge_mask_with(width=SIZE * 2),
        BEFORE,
        "force_mask is 256x128 but the picture is 128x128",
        "2",
    ),
    "mask: batch mismatch (3 masks, 2 pictures), on RALU Edge Mask": Case(
        edge_mask_with(copies=3), BEFORE, "force_mask holds 3 masks for a batch of 2 images", "2"
    ),
    "mask: all zeros": Case(force_mask(value=0.0), RUNS, check=default_selection),
    "mask: all ones": Case(force_mask(value=1.0), RUNS, check=upsampled_all_early),
    "mask: the picture's shape at half its resolution": Case(
        force_mask(value=1.0, width=SIZE // 2, height=SIZE // 2), RUNS, check=upsampled_all_early
    ),
}


def queue_errors(body: dict, node: str) -> str:
    assert list(body["node_errors"]) == [node], body
    return " | ".join(f"{e['message']}: {e['details']}" for e in body["node_errors"][node]["errors"])


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_input(comfy_host, test_models, case):
    prompt = ralu_prompt(test_models, size=SIZE, prefix="bad_input")
    case.edit(prompt, test_models)
    status, body = comfy_host.submit(prompt)
    if case.outcome == QUEUE:
        # Every output of these prompts depends on the bad node (the Planner is no output node), so
        # ComfyUI runs none and answers 400.
        assert status == 400, body
        assert case.text in queue_errors(body, case.node)
        return
    assert status == 200, body
    if case.outcome == RUNS:
        case.check(comfy_host, comfy_host.wait(body["prompt_id"]))
        return
    with pytest.raises(PromptFailed) as failure:
        comfy_host.wait(body["prompt_id"])
    [error] = [data for kind, data in failure.value.entry["status"]["messages"] if kind == "execution_error"]
    assert error["node_id"] == case.node, error["exception_message"]
    assert case.text in error["exception_message"]
    assert not any("sample_custom" in line for line in error["traceback"]), "refused before sampling"
