"""What RALU KSampler shows on its node, as the real server sends it: the stage and step while it runs
(over the websocket, in order) and, after the run, its result preview with the early cells tinted."""

import numpy as np
import pytest
from PIL import Image

from tests.host_socket import HostSocket
from tests.prompts import SAMPLER_NODE, executed, ralu_prompt

SIZE = 128  # a 4x4 low-res grid
CELL = 32  # pixels of one low-res token in the full-size picture
# flux_4x: 5, 6 and 7 steps; up_ratio 0.3 upsamples 4 of the 16 cells early.
STAGE_STEPS = (5, 6, 7)


@pytest.fixture(scope="module")
def run(comfy_host, test_models):
    """One flux_4x run, with the websocket messages the server sent this client during it."""
    prompt = ralu_prompt(test_models, preset="flux_4x", seed=5150, size=SIZE, prefix="readout")
    with HostSocket(comfy_host) as socket:
        entry = comfy_host.run(prompt, timeout=240)
        # The server's last message of a prompt: executing no node.
        socket.wait_for(lambda messages: any(k == "executing" and d["node"] is None for k, d in messages))
    assert executed(entry, SAMPLER_NODE)
    return entry, socket.messages


def test_the_stage_and_step_arrive_in_order_with_the_progress_bar(run):
    _, messages = run
    seen = [
        (kind, data["text"] if kind == "progress_text" else data["value"])
        for kind, data in messages
        if kind in ("progress_text", "progress") and str(data.get("node")) == SAMPLER_NODE
    ]
    total = sum(STAGE_STEPS)
    expected, step = [], 0
    for stage, steps in enumerate(STAGE_STEPS, start=1):
        for _ in range(steps):
            step += 1
            expected += [("progress_text", f"stage {stage}/3, step {step}/{total}"), ("progress", step)]
    assert seen == expected


def test_the_preview_tints_exactly_the_early_mask_cells(comfy_host, run):
    entry, _ = run
    ui = entry["outputs"][SAMPLER_NODE]
    [tinted_ref], [plain_ref] = ui["images"], ui["ralu_plain"]
    assert tinted_ref["type"] == plain_ref["type"] == "temp"
    [mask] = comfy_host.output_images(entry, ["13"])

    def pixels(ref):
        return np.asarray(Image.open(comfy_host.base_dir / "temp" / ref["subfolder"] / ref["filename"]))

    tinted, plain = pixels(tinted_ref).astype(int), pixels(plain_ref).astype(int)
    assert tinted.shape == plain.shape == (SIZE, SIZE, 3)
    early = np.asarray(mask.convert("L")) > 127
    assert early.sum() == 4 * CELL * CELL
    # Nothing outside the early cells changes; every pixel of each early cell does.
    changed = np.abs(tinted - plain).max(axis=-1)
    assert (changed[~early] == 0).all()
    assert (changed[early] > 0).mean() > 0.99
    # The tint is an orange: red up or kept, blue down, over the early cells.
    assert (tinted[early][:, 0] >= plain[early][:, 0]).all()
    assert (tinted[early][:, 2] <= plain[early][:, 2]).all()
