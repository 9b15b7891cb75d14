"""The real ComfyUI host starts with this pack loaded, and a prompt runs end to end on the test models."""

from __future__ import annotations

import re
import time

import pytest

from tests.comfy_path import REPO_ROOT
from tests.host import PACK_NAME, TEST_NODES_NAME, PromptRejected, flux_txt2img_prompt

RALU_NODES = ("RALUStagePlanner", "RALUEdgeMask", "RALUKSampler")


def _import_time_lines(log: str) -> list[str]:
    """The lines of ComfyUI's "Import times for custom nodes:" table."""
    _, _, table = log.partition("Import times for custom nodes:")
    return re.findall(r"^\s*[\d.]+ seconds.*$", table, flags=re.MULTILINE)


def _tracebacks(log: str) -> list[str]:
    """Every traceback block in the log (from "Traceback" to the next unindented line)."""
    return re.findall(r"^Traceback \(most recent call last\):\n(?:[ \t].*\n)*.*$", log, flags=re.MULTILINE)


def _our_tracebacks(log: str, base_dir) -> list[str]:
    """Tracebacks with a frame in this repository (as linked into custom_nodes, or resolved), not in
    the ComfyUI host that lives under .comfy/ (whose own optional nodes log some: torchaudio)."""
    ours = (f"{base_dir}/custom_nodes/{PACK_NAME}/", f"{base_dir}/custom_nodes/{TEST_NODES_NAME}/")
    repo, host = f"{REPO_ROOT}/", f"{REPO_ROOT}/.comfy/"
    found = []
    for tb in _tracebacks(log):
        files = re.findall(r'^\s*File "([^"]+)"', tb, flags=re.MULTILINE)
        if any(f.startswith(ours) or (f.startswith(repo) and not f.startswith(host)) for f in files):
            found.append(tb)
    return found


def test_server_answers(comfy_host):
    stats = comfy_host.get_json("/system_stats")
    assert stats["devices"][0]["type"] == "cpu"
    assert comfy_host.alive()


def test_pack_imported_without_errors(comfy_host):
    log = comfy_host.plain_log()
    lines = _import_time_lines(log)
    ours = [line for line in lines if line.rstrip().endswith(f"/custom_nodes/{PACK_NAME}")]
    assert ours, f"ComfyUI did not list {PACK_NAME} in its custom node import times:\n{comfy_host.log_tail()}"
    assert "IMPORT FAILED" not in ours[0], f"{ours[0]}\n{comfy_host.log_tail(120)}"
    failed = [line for line in log.splitlines() if "IMPORT FAILED" in line and f"/{PACK_NAME}" in line]
    assert not failed, "\n".join(failed)
    startup = log.partition("\nStarting server")[0]  # later tracebacks may be prompts failing on purpose
    ours_tb = _our_tracebacks(startup, comfy_host.base_dir)
    assert not ours_tb, "tracebacks from our pack while ComfyUI started:\n" + "\n\n".join(ours_tb)
    test_nodes = [line for line in lines if line.rstrip().endswith(f"/custom_nodes/{TEST_NODES_NAME}")]
    assert test_nodes and "IMPORT FAILED" not in test_nodes[0], comfy_host.log_tail(120)


def test_object_info_lists_nodes(comfy_host, test_models):
    info = comfy_host.object_info()
    assert "RALUTestConditioning" in info
    ours = [name for name in RALU_NODES if name in info]
    print(f"RALU nodes in /object_info: {ours}")
    for name in ours:
        module = info[name]["python_module"]
        assert module.startswith(f"custom_nodes.{PACK_NAME}"), module
    # The test models are visible to the stock loaders.
    unets = info["UNETLoader"]["input"]["required"]["unet_name"][0]
    assert {test_models.flux_dev, test_models.sd3} <= set(unets)
    vaes = info["VAELoader"]["input"]["required"]["vae_name"][0]
    assert {test_models.taef1, test_models.taesd3} <= set(vaes)
    clips = info["CLIPLoader"]["input"]["required"]["clip_name"][0]
    assert test_models.clip_l in clips


def test_invalid_prompt_is_rejected(comfy_host, test_models):
    prompt = flux_txt2img_prompt(test_models.flux_dev)
    prompt["1"]["inputs"]["unet_name"] = "no_such_model.safetensors"
    status, body = comfy_host.submit(prompt)
    assert status == 400, body
    assert "1" in body["node_errors"], body
    with pytest.raises(PromptRejected):
        comfy_host.queue(prompt)


def test_flux_prompt_end_to_end(comfy_host, test_models):
    prompt = flux_txt2img_prompt(test_models.flux_dev, test_models.taef1, width=256, height=256, steps=2,
                                 filename_prefix="e2e_flux")  # fmt: skip
    start = time.monotonic()
    entry = comfy_host.run(prompt, timeout=300)
    seconds = time.monotonic() - start
    print(f"FLUX 256x256, 2 euler steps, taef1, cold: {seconds:.1f} s")
    paths = comfy_host.output_paths(entry)
    assert len(paths) == 1 and paths[0].is_file() and paths[0].suffix == ".png", paths
    assert paths[0].parent == comfy_host.output_dir
    (image,) = comfy_host.output_images(entry)
    assert image.size == (256, 256)
    assert image.mode == "RGB"
