"""Turn a ComfyUI workflow as the frontend saves it (UI / litegraph format) into the API prompt format
that POST /prompt takes, and adapt prompts for tests and the demo. No ComfyUI import: the node
definitions come from a running server's GET /object_info.

    from scripts.workflow_api import load_workflow, to_api, substitute, set_group_mode, TEST_MODELS

    workflow = load_workflow("workflows/ralu_flux_4x.json")
    workflow = set_group_mode(workflow, BASELINE_GROUP, MODE_ALWAYS)   # un-mute the 50-step comparison
    prompt = to_api(workflow, object_info)
    prompt = substitute(prompt, replacements_for_test_models(256, 256))      # random-weight test models

Conversion rules (those of the frontend's "Save (API)"):
- a node's widget inputs are its inputs of widget type (INT, FLOAT, STRING, BOOLEAN, COMBO or an
  option list) in the definition's input order, required then optional; `widgets_values` holds their
  values in that order, with one extra value after each input that has `control_after_generate`
  ("fixed" / "increment" / "decrement" / "randomize") and after each upload combo ("image" ...);
  those companions are not inputs and are skipped. A widget input that is linked takes the link.
- muted nodes (mode 2) are left out, and an input linked to one is left out too;
- bypassed nodes (mode 4) are left out, and an input linked to one is fed from the bypassed node's
  input of the same type (the one at the same slot first, then the first in order), as ComfyUI
  does; with no such input (or an unlinked one) the input is left out;
- Reroute nodes are followed; a PrimitiveNode gives its value to the widgets it is linked to;
- Note and MarkdownNote are left out.

`python scripts/workflow_api.py WORKFLOW.json --server http://127.0.0.1:8188 [--test-models]`
prints the API prompt.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path

MODE_ALWAYS = 0
MODE_NEVER = 2  # "muted": the node does not run
MODE_BYPASS = 4  # the node does not run; its inputs pass through to outputs of the same type
NOTE_TYPES = frozenset({"Note", "MarkdownNote"})
FRONTEND_ONLY_TYPES = NOTE_TYPES | {"Reroute", "PrimitiveNode"}
WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize"})
UPLOAD_VALUES = frozenset({"image", "video", "audio", "file"})
LEGACY_SEED_NAMES = frozenset({"seed", "noise_seed"})

# Start of the title of the muted comparison group in every shipped workflow ("Comparison: plain
# FLUX.1-dev, 50 steps, ..." in workflows/ralu_flux_*.json, "Comparison: plain SD3 Medium, 28 steps, ..."
# in workflows/ralu_sd3_*.json).
BASELINE_GROUP = "Comparison: plain "
RALU_GROUP = "3. RALU"

# What a FLUX.1-dev user has, as named in the shipped workflows.
STOCK_MODELS = {
    "unet_name": "flux1-dev.safetensors",
    "clip_names": ("t5xxl_fp16.safetensors", "clip_l.safetensors"),
    "vae_name": "ae.safetensors",
}
# FLUX.1-schnell's users have the same text encoders and VAE.
STOCK_SCHNELL_MODELS = {**STOCK_MODELS, "unet_name": "flux1-schnell.safetensors"}
# What an SD3 Medium user has: the checkpoint with CLIP-L, CLIP-G, T5-XXL and the VAE in one file, as
# ComfyUI's own SD3 example loads it (CheckpointLoaderSimple).
STOCK_SD3_CHECKPOINT = "sd3_medium_incl_clips_t5xxlfp16.safetensors"
# The random-weight stand-ins that `python -m tests.models` builds (tests/models/builders.py), per model
# a plan is for (ralu.plan.Plan.model: the families' own, and FLUX.1-schnell). The CLIP-L text path
# (CLIPLoader type "sd3") conditions both families.
TEST_MODELS = {
    "unet_name": "ralu_test_flux_dev.safetensors",
    "clip": {"clip_name": "ralu_test_clip_l.safetensors", "type": "sd3"},
    "vae_name": "taef1",
}
TEST_MODELS_BY_FAMILY = {
    "flux": TEST_MODELS,
    "flux_schnell": {**TEST_MODELS, "unet_name": "ralu_test_flux_schnell.safetensors"},
    "sd3": {**TEST_MODELS, "unet_name": "ralu_test_sd3.safetensors", "vae_name": "taesd3"},
}
# The separate loaders a checkpoint loader's outputs (MODEL, CLIP, VAE) become with the test models.
SPLIT_LOADERS = {"CheckpointLoaderSimple": ("UNETLoader", "CLIPLoader", "VAELoader")}
LATENT_NODE_TYPES = frozenset({"EmptySD3LatentImage", "EmptyLatentImage", "EmptyHunyuanLatentVideo"})


class WorkflowError(ValueError):
    """The workflow cannot be converted; the message names the node and what is wrong."""


# --------------------------------------------------------------------------- reading the UI format
def load_workflow(path: str | Path) -> dict:
    with open(path, encoding="utf-8") as f:
        workflow = json.load(f)
    if not isinstance(workflow, dict) or "nodes" not in workflow:
        raise WorkflowError(f"{path} is not a UI-format workflow (no 'nodes'); is it an API prompt?")
    return workflow


def link_table(workflow: Mapping) -> dict[int, dict]:
    """id -> {origin_id, origin_slot, target_id, target_slot, type}, from either link format."""
    table = {}
    for link in workflow.get("links") or []:
        if isinstance(link, Mapping):
            keys = ("id", "origin_id", "origin_slot", "target_id", "target_slot", "type")
            entry = {k: link[k] for k in keys}
        else:
            lid, origin_id, origin_slot, target_id, target_slot, type_ = link[:6]
            entry = dict(id=lid, origin_id=origin_id, origin_slot=origin_slot, target_id=target_id,
                         target_slot=target_slot, type=type_)  # fmt: skip
        table[entry["id"]] = entry
    return table


def node_title(node: Mapping, object_info: Mapping | None = None) -> str:
    """The title the frontend shows: the node's own, else its type's display name."""
    display_name = (object_info or {}).get(node["type"], {}).get("display_name")
    return node.get("title") or display_name or node["type"]


def _input_spec_options(spec) -> dict:
    return spec[1] if len(spec) > 1 and isinstance(spec[1], Mapping) else {}


def _input_type(spec):
    return spec[0]


def is_widget_spec(spec) -> bool:
    """Whether an /object_info input spec is shown as a widget (not a socket) by the frontend."""
    type_ = _input_type(spec)
    if _input_spec_options(spec).get("forceInput"):
        return False
    return isinstance(type_, list) or type_ in WIDGET_TYPES


def ordered_inputs(node_def: Mapping) -> list[tuple[str, list, bool]]:
    """(name, spec, required) of a node definition's inputs in the frontend's order (hidden left out)."""
    inputs = node_def.get("input", {})
    order = node_def.get("input_order") or {}
    result = []
    for section in ("required", "optional"):
        specs = inputs.get(section) or {}
        names = list(order.get(section) or specs)
        names += [n for n in specs if n not in names]
        result.extend((name, specs[name], section == "required") for name in names if name in specs)
    return result


def widget_inputs(node_def: Mapping) -> list[tuple[str, list]]:
    return [(name, spec) for name, spec, _ in ordered_inputs(node_def) if is_widget_spec(spec)]


def has_control_widget(name: str, spec) -> bool:
    options = _input_spec_options(spec)
    if options.get("control_after_generate"):
        return True
    return _input_type(spec) == "INT" and name in LEGACY_SEED_NAMES


def has_upload_widget(spec) -> bool:
    return any(key.endswith("_upload") and value for key, value in _input_spec_options(spec).items())


def widget_values(node: Mapping, node_def: Mapping) -> dict:
    """{input name: value} of a node's widgets, with the control / upload companions skipped.

    Trailing optional widgets that an older save lacks take the definition's default."""
    saved = node.get("widgets_values")
    widgets = widget_inputs(node_def)
    if isinstance(saved, Mapping):  # some nodes save a name -> value dict
        return {name: saved[name] for name, _ in widgets if name in saved}
    values = list(saved or [])
    result, i = {}, 0
    for name, spec in widgets:
        if i >= len(values):
            options = _input_spec_options(spec)
            if "default" in options:
                result[name] = options["default"]
                continue
            raise WorkflowError(
                f"node {node['id']} ({node_title(node)}): widgets_values has {len(values)} values, too few "
                f"for its widgets {[n for n, _ in widgets]} (no value or default for {name!r})"
            )
        result[name] = values[i]
        i += 1
        companion = values[i] if i < len(values) else None
        if (has_control_widget(name, spec) and companion in CONTROL_VALUES) or (
            has_upload_widget(spec) and companion in UPLOAD_VALUES
        ):
            i += 1
    return result


# --------------------------------------------------------------------------- conversion
def to_api(workflow: Mapping, object_info: Mapping, keep_meta: bool = True) -> dict:
    """The API prompt ({node id: {class_type, inputs, _meta}}) of a UI-format workflow."""
    nodes = {node["id"]: node for node in workflow["nodes"]}
    links = link_table(workflow)
    active = [n for n in nodes.values() if n.get("mode", 0) not in (MODE_NEVER, MODE_BYPASS)]
    unknown = sorted({n["type"] for n in active if n["type"] not in FRONTEND_ONLY_TYPES | set(object_info)})
    if unknown:
        raise WorkflowError(f"node types not installed on the server: {', '.join(unknown)}")

    def resolve(link_id, wanted_type, seen=()):
        """('link', [id, slot]) / ('value', v) / None for the value arriving over link `link_id`."""
        if link_id in seen:
            raise WorkflowError(f"link {link_id} is part of a cycle through bypassed or reroute nodes")
        link = links.get(link_id)
        if link is None:
            raise WorkflowError(f"link {link_id} is used by a node but missing from 'links'")
        source = nodes.get(link["origin_id"])
        if source is None:
            raise WorkflowError(f"link {link_id} starts at node {link['origin_id']}, which does not exist")
        mode = source.get("mode", 0)
        if source["type"] == "Reroute":
            upstream = (source.get("inputs") or [{}])[0].get("link")
            return None if upstream is None else resolve(upstream, wanted_type, (*seen, link_id))
        if source["type"] == "PrimitiveNode":
            return None if mode == MODE_NEVER else ("value", (source.get("widgets_values") or [None])[0])
        if mode == MODE_NEVER:
            return None
        if mode == MODE_BYPASS:
            source_inputs = source.get("inputs") or []
            slot = link["origin_slot"]
            for index in [slot, *range(len(source_inputs))]:
                if 0 <= index < len(source_inputs) and source_inputs[index].get("type") == wanted_type:
                    upstream = source_inputs[index].get("link")
                    return None if upstream is None else resolve(upstream, wanted_type, (*seen, link_id))
            return None
        return ("link", [str(source["id"]), link["origin_slot"]])

    prompt = {}
    for node in sorted(nodes.values(), key=lambda n: n["id"]):
        if node["type"] in FRONTEND_ONLY_TYPES or node.get("mode", 0) in (MODE_NEVER, MODE_BYPASS):
            continue
        node_def = object_info[node["type"]]
        inputs = dict(widget_values(node, node_def))
        for entry in node.get("inputs") or []:
            name = (entry.get("widget") or {}).get("name") or entry["name"]
            if entry.get("link") is None:
                continue
            wanted = entry.get("type")
            if wanted in (None, "*"):
                wanted = links.get(entry["link"], {}).get("type")
            resolved = resolve(entry["link"], wanted)
            if resolved is None:  # from a muted node, or a bypassed one with nothing to pass on
                continue
            inputs[name] = resolved[1]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
        if keep_meta:
            prompt[str(node["id"])]["_meta"] = {"title": node_title(node, object_info)}
    return prompt


# --------------------------------------------------------------------------- groups (UI format)
def find_group(workflow: Mapping, title_prefix: str) -> dict:
    matches = [g for g in workflow.get("groups") or [] if g.get("title", "").startswith(title_prefix)]
    if len(matches) != 1:
        titles = [g.get("title") for g in workflow.get("groups") or []]
        raise WorkflowError(f"{len(matches)} groups have a title starting {title_prefix!r}; groups: {titles}")
    return matches[0]


def nodes_in_group(workflow: Mapping, title_prefix: str) -> list[dict]:
    """The nodes whose centre (title bar included) lies in the group's bounding box, the frontend's rule."""
    x, y, w, h = find_group(workflow, title_prefix)["bounding"]
    inside = []
    for node in workflow["nodes"]:
        (nx, ny), (nw, nh) = node["pos"], node["size"]
        cx, cy = nx + nw / 2, ny - 30 + (nh + 30) / 2  # 30: the node's title bar, above pos
        if x <= cx <= x + w and y <= cy <= y + h:
            inside.append(node)
    return inside


def set_group_mode(workflow: Mapping, title_prefix: str, mode: int) -> dict:
    """A copy of the workflow with every node of the group (notes aside) set to `mode`, as the
    group's 'Set Group Nodes to Always / Never' / 'Bypass Group Nodes' menu entries do."""
    workflow = copy.deepcopy(workflow)
    members = {n["id"] for n in nodes_in_group(workflow, title_prefix)}
    for node in workflow["nodes"]:
        if node["id"] in members and node["type"] not in NOTE_TYPES:
            node["mode"] = mode
    return workflow


# --------------------------------------------------------------------------- API prompt helpers
def find_nodes(prompt: Mapping, class_type: str, **inputs) -> list[str]:
    """Ids of the prompt's nodes of `class_type` whose inputs have the given values."""
    return [
        node_id for node_id, node in prompt.items()
        if node["class_type"] == class_type and all(node["inputs"].get(k) == v for k, v in inputs.items())
    ]  # fmt: skip


def prune_to(prompt: Mapping, keep: Iterable[str]) -> dict:
    """The part of the prompt the nodes `keep` need: those nodes and everything upstream of them."""
    needed, todo = set(), [str(k) for k in keep]
    while todo:
        node_id = todo.pop()
        if node_id in needed:
            continue
        if node_id not in prompt:
            raise WorkflowError(f"node {node_id} is not in the prompt")
        needed.add(node_id)
        for value in prompt[node_id]["inputs"].values():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                todo.append(value[0])
    return {k: copy.deepcopy(v) for k, v in prompt.items() if k in needed}


def replacements_for_test_models(width: int = 256, height: int = 256, model: str = "flux", **extra) -> dict:
    """Replacements that swap the stock files of a model ("flux": FLUX.1-dev, "flux_schnell", "sd3": SD3
    Medium) for its test models, at width x height."""
    if model not in TEST_MODELS_BY_FAMILY:
        raise WorkflowError(f"model ({model!r}) must be one of {', '.join(TEST_MODELS_BY_FAMILY)}")
    return {**copy.deepcopy(TEST_MODELS_BY_FAMILY[model]), "width": width, "height": height, **extra}


def split_checkpoint_loaders(prompt: Mapping) -> dict:
    """A copy of an API prompt where each checkpoint loader (MODEL, CLIP, VAE from one file) is three
    separate loaders: a UNETLoader under the same node id, then a CLIPLoader and a VAELoader under new
    ids; the inputs that took its CLIP or VAE output take the new loader's. Their file names are left
    for substitute() to fill in."""
    prompt = copy.deepcopy(dict(prompt))
    next_id = max((int(k) for k in prompt if str(k).isdigit()), default=0) + 1
    moved: dict[tuple[str, int], list] = {}
    for node_id in list(prompt):
        loaders = SPLIT_LOADERS.get(prompt[node_id]["class_type"])
        if loaders is None:
            continue
        unet, clip, vae = loaders
        prompt[node_id] = {**prompt[node_id], "class_type": unet, "inputs": {"weight_dtype": "default"}}
        for slot, class_type in ((1, clip), (2, vae)):
            prompt[str(next_id)] = {"class_type": class_type, "inputs": {}}
            moved[(node_id, slot)] = [str(next_id), 0]
            next_id += 1
    for node in prompt.values():
        for name, value in node["inputs"].items():
            if isinstance(value, list) and len(value) == 2 and (str(value[0]), value[1]) in moved:
                node["inputs"][name] = list(moved[(str(value[0]), value[1])])
    return prompt


def substitute(prompt: Mapping, replacements: Mapping) -> dict:
    """A copy of an API prompt with models, sizes and sampler settings replaced. Keys (all optional):

    - unet_name: every UNETLoader's file;
    - clip: {"clip_name": ..., "type": ...}: every DualCLIPLoader / CLIPLoader becomes a CLIPLoader with
      these inputs, under the same node id (its output 0 is CLIP either way);
    - vae_name: every VAELoader's file;
    with all three, every checkpoint loader first becomes those three loaders (split_checkpoint_loaders);
    - width, height: every empty-latent node's size;
    - seed: every KSampler's and RALUKSampler's seed;
    - steps: every (plain) KSampler's step count;
    - filename_prefix: {old prefix: new prefix} for SaveImage nodes.
    """
    unknown = set(replacements) - {"unet_name", "clip", "vae_name", "width", "height", "seed", "steps",
                                   "filename_prefix"}  # fmt: skip
    if unknown:
        raise WorkflowError(f"unknown replacement keys: {sorted(unknown)}")
    prompt = copy.deepcopy(dict(prompt))
    loader_keys = {"unet_name", "clip", "vae_name"}
    checkpoints = [n for n in prompt.values() if n["class_type"] in SPLIT_LOADERS]
    if checkpoints and loader_keys & set(replacements):
        if not loader_keys <= set(replacements):
            raise WorkflowError(
                f"the prompt loads its models with {checkpoints[0]['class_type']} (model, text encoders "
                f"and VAE in one file): replace them together with {sorted(loader_keys)}, not only "
                f"{sorted(loader_keys & set(replacements))}"
            )
        prompt = split_checkpoint_loaders(prompt)
    for node in prompt.values():
        kind, inputs = node["class_type"], node["inputs"]
        if kind == "UNETLoader" and "unet_name" in replacements:
            inputs["unet_name"] = replacements["unet_name"]
        elif kind in ("DualCLIPLoader", "CLIPLoader") and "clip" in replacements:
            node["class_type"] = "CLIPLoader"
            node["inputs"] = {"device": inputs.get("device", "default"), **replacements["clip"]}
        elif kind == "VAELoader" and "vae_name" in replacements:
            inputs["vae_name"] = replacements["vae_name"]
        elif kind in LATENT_NODE_TYPES:
            for key in ("width", "height"):
                if key in replacements:
                    inputs[key] = replacements[key]
        elif kind in ("KSampler", "RALUKSampler") and "seed" in replacements:
            inputs["seed"] = replacements["seed"]
        if kind == "KSampler" and "steps" in replacements:
            inputs["steps"] = replacements["steps"]
        if kind == "SaveImage" and inputs.get("filename_prefix") in replacements.get("filename_prefix", {}):
            inputs["filename_prefix"] = replacements["filename_prefix"][inputs["filename_prefix"]]
    return prompt


def fetch_object_info(server: str, timeout: float = 60.0) -> dict:
    with urllib.request.urlopen(server.rstrip("/") + "/object_info", timeout=timeout) as resp:
        return json.load(resp)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print the API prompt of a UI-format ComfyUI workflow.")
    parser.add_argument("workflow", help="UI-format workflow JSON (as the frontend saves it)")
    parser.add_argument("--server", default="http://127.0.0.1:8188", help="ComfyUI server for /object_info")
    parser.add_argument(
        "--enable-group",
        action="append",
        default=[],
        metavar="TITLE_PREFIX",
        help="un-mute the nodes of this group first (repeatable), e.g. 'Comparison'",
    )
    parser.add_argument("--test-models", action="store_true", help="swap in the random-weight test models")
    parser.add_argument("--size", type=int, default=256, help="latent size with --test-models (default 256)")
    parser.add_argument(
        "--family",
        choices=sorted(TEST_MODELS_BY_FAMILY),
        default="flux",
        help="whose test models --test-models swaps in: flux (default), flux_schnell or sd3",
    )
    opts = parser.parse_args(argv)
    workflow = load_workflow(opts.workflow)
    for title in opts.enable_group:
        workflow = set_group_mode(workflow, title, MODE_ALWAYS)
    prompt = to_api(workflow, fetch_object_info(opts.server))
    if opts.test_models:
        prompt = substitute(prompt, replacements_for_test_models(opts.size, opts.size, opts.family))
    json.dump(prompt, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
