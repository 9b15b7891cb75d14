"""RALU KSampler on SD3 and SD3.5 in the real host: one tiny random-weight model per key layout that
ComfyUI's loader tells apart (SD3 Medium; SD3.5 Large's qk-norm; SD3.5 Medium's MMDiT-X), loaded by
UNETLoader, sampled with cfg and a negative prompt on a batch of two, decoded by taesd3."""

import pytest
import torch

from ralu.plan import PRESETS
from tests.models import SD3_LAYOUTS
from tests.prompts import (
    check_plain_after_ralu_matches_a_fresh_server,
    ralu_prompt,
    saved_latent,
    stage_report,
)

SIZE = 256  # an 8x8 low-res grid
CASES = [(layout, "sd3_3x") for layout in SD3_LAYOUTS] + [(SD3_LAYOUTS[0], "sd3_2x")]


def case_id(value) -> str:
    return value.label.replace(" ", "_") if hasattr(value, "label") else value


@pytest.mark.parametrize(("layout", "preset"), CASES, ids=case_id)
def test_each_layout_runs_the_plan_and_leaves_the_model_as_it_was(
    comfy_host, fresh_host, test_models, layout, preset
):
    prefix = f"sd3_{case_id(layout)}_{preset}"
    case = {"family": "sd3", "unet": layout.filename, "preset": preset, "cfg": 4.5, "batch": 2, "size": SIZE}
    entry = comfy_host.run(ralu_prompt(test_models, seed=5, prefix=prefix, **case), timeout=120)
    plan = PRESETS[preset]
    low_res = (SIZE // 32) ** 2
    k = int(low_res * plan.up_ratio)
    assert stage_report(entry) == (
        f"tokens per stage: {low_res}, {low_res + 3 * k}, {4 * low_res}; "
        f"model calls per stage: {', '.join(map(str, plan.steps))}"
    )
    latent = saved_latent(comfy_host, prefix)
    assert latent.shape == (2, 16, SIZE // 8, SIZE // 8)
    assert torch.isfinite(latent).all() and not torch.allclose(latent[0], latent[1])
    pictures = comfy_host.output_images(entry, ["11"])
    assert [picture.size for picture in pictures] == [(SIZE, SIZE)] * 2
    saved = [path for path in comfy_host.output_paths(entry) if path.name.startswith(f"{prefix}_0")]
    assert len(saved) == 2 and all(path.stat().st_size > 0 for path in saved)

    check_plain_after_ralu_matches_a_fresh_server(comfy_host, fresh_host, test_models, prefix, **case)
