"""The pack keeps to itself: importing it changes nothing global in ComfyUI, a RALU run writes nothing
outside ComfyUI's output and temp folders, and no HTTP route of ours takes a path."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.comfy_path import REPO_ROOT, find_host
from tests.host import PACK_NAME
from tests.prompts import ralu_prompt, stage_report

# Run by the host's python in a fresh process: loads the pack through ComfyUI's own custom-node loader
# and prints what changed in ComfyUI's modules (every attribute's identity, and the length of every
# dict, list and set; attributes that are modules only record a submodule's import) and in torch's
# process-wide settings.
IMPORT_CHECK = r"""
import asyncio, json, sys, types

sys.path.insert(0, sys.argv[2])
from tests import comfy_path

comfy_path.ensure()
import utils.install_util  # first, as main.py does: nodes puts comfy/ (with a utils.py) on sys.path
import server
import comfy.model_management, comfy.sample, comfy.samplers, comfy.utils, comfy.patcher_extension
import comfy_api.latest, execution, folder_paths, latent_preview, node_helpers, nodes, torch

ROOTS = {"comfy", "comfy_extras", "comfy_api", "comfy_execution", "comfy_config", "app", "nodes",
         "server", "execution", "folder_paths", "latent_preview", "node_helpers"}


def snapshot():
    modules = {}
    for name, module in list(sys.modules.items()):
        if isinstance(module, types.ModuleType) and name.split(".")[0] in ROOTS:
            modules[name] = {
                key: (id(value), len(value) if isinstance(value, (dict, list, set)) else None)
                for key, value in list(vars(module).items())
                if not isinstance(value, types.ModuleType)
            }
    settings = (torch.get_default_dtype(), torch.is_grad_enabled(), torch.get_num_threads(),
                torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    return modules, repr(settings)


before, settings_before = snapshot()
loaded = asyncio.run(nodes.load_custom_node(sys.argv[1]))
after, settings_after = snapshot()
changed = sorted(
    f"{name}.{key}"
    for name, attributes in before.items()
    for key in attributes.keys() | after[name].keys()
    if attributes.get(key) != after[name].get(key)
)
print(json.dumps({"loaded": loaded, "changed": changed, "settings": [settings_before, settings_after],
                  "nodes": sorted(set(nodes.NODE_CLASS_MAPPINGS) - {"KSampler"})}))
"""
# What ComfyUI's loader itself records about any pack it loads.
LOADER_RECORDS = {
    "nodes.NODE_CLASS_MAPPINGS",
    "nodes.NODE_DISPLAY_NAME_MAPPINGS",
    "nodes.LOADED_MODULE_DIRS",
    "nodes.EXTENSION_WEB_DIRS",
}


def test_importing_the_pack_changes_nothing_global_in_comfyui(tmp_path):
    host = find_host()
    pack = tmp_path / "custom_nodes" / PACK_NAME  # the folder name users install it under
    pack.parent.mkdir()
    pack.symlink_to(REPO_ROOT, target_is_directory=True)
    run = subprocess.run(
        [host.python, "-c", IMPORT_CHECK, str(pack), str(REPO_ROOT)],
        cwd=host.comfy_dir,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
    )
    assert run.returncode == 0, run.stderr[-4000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["loaded"] is True, run.stderr[-4000:]
    assert {"RALUStagePlanner", "RALUEdgeMask", "RALUKSampler"} <= set(report["nodes"])
    assert set(report["changed"]) <= LOADER_RECORDS, report["changed"]
    assert report["settings"][0] == report["settings"][1]


def file_states(root: Path, skip: tuple[str, ...] = ()) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file under root, except under the `skip` folders and bytecode caches."""
    states = {}
    for folder, dirs, files in os.walk(root):
        relative = Path(folder).relative_to(root)
        dirs[:] = [d for d in dirs if d != "__pycache__" and str(relative / d) not in skip]
        for name in files:
            path = Path(folder, name)
            if path.is_file():
                stat = path.stat()
                states[str(relative / name)] = (stat.st_size, stat.st_mtime_ns)
    return states


def changed(before: dict, after: dict) -> set[str]:
    return {path for path in before.keys() | after.keys() if before.get(path) != after.get(path)}


def test_a_ralu_run_writes_only_to_the_output_and_temp_folders(comfy_host, test_models):
    """The server's own files (its log, its database) aside, nothing changes outside output/ and temp/
    of its base directory, in this repository, in ComfyUI's folder or among the models."""
    host = find_host()
    roots = {
        "base": (comfy_host.base_dir, ("output", "temp", "custom_nodes")),
        "repository": (REPO_ROOT, (".git", ".comfy")),
        "ComfyUI": (host.comfy_dir, ("custom_nodes",)),
        "models": (test_models.dir, ()),
    }
    before = {name: file_states(root, skip) for name, (root, skip) in roots.items()}
    entry = comfy_host.run(ralu_prompt(test_models, seed=71, size=128, prefix="isolation"))
    assert stage_report(entry).startswith("tokens per stage")
    after = {name: file_states(root, skip) for name, (root, skip) in roots.items()}
    server_files = {
        p for p in changed(before["base"], after["base"]) if p.endswith(".log") or "comfyui.db" in p
    }
    assert changed(before["base"], after["base"]) == server_files
    for name in ("repository", "ComfyUI", "models"):
        assert not changed(before[name], after[name]), name
    assert comfy_host.output_paths(entry), "the run wrote its pictures to the output folder"


def test_no_route_of_ours_takes_a_path(comfy_host):
    """Routes under /ralu (or /api/ralu) have no variable part: nothing a request names is served or
    written as a file. The frontend's folder (web/) is served by ComfyUI's own static route. (Today the
    pack adds no route; the check holds for any added later.)"""
    entry = comfy_host.run({"1": {"class_type": "RALUTestRoutes", "inputs": {}}})
    routes = entry["outputs"]["1"]["text"]
    assert any(" /prompt" in route for route in routes), routes  # the listing is the server's
    ours = [route for route in routes if route.split(" ", 1)[1].removeprefix("/api").startswith("/ralu")]
    for route in ours:
        assert "{" not in route, route
