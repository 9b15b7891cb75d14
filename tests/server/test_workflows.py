"""The shipped drag-and-drop workflows (workflows/*.json) against the real ComfyUI server.

Static checks use the server's /object_info: node types, widget values, link types, layout, and the
muted comparison group (plain FLUX.1-dev at 50 steps, plain SD3 Medium at 28). Then each workflow's
RALU part runs end to end through scripts/workflow_api.py with its family's random-weight test models
swapped in at 256x256 (SD3's one checkpoint file becomes the test model, CLIP-L and taesd3 loaders),
and the comparison of one workflow per family runs too (at fewer steps: see BASELINE_TEST_STEPS).
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from ralu.plan import PRESETS
from scripts.workflow_api import (
    BASELINE_GROUP,
    CONTROL_VALUES,
    FRONTEND_ONLY_TYPES,
    MODE_ALWAYS,
    MODE_BYPASS,
    MODE_NEVER,
    NOTE_TYPES,
    STOCK_MODELS,
    STOCK_SCHNELL_MODELS,
    STOCK_SD3_CHECKPOINT,
    find_group,
    find_nodes,
    has_control_widget,
    link_table,
    load_workflow,
    nodes_in_group,
    prune_to,
    replacements_for_test_models,
    set_group_mode,
    substitute,
    to_api,
    widget_inputs,
)
from tests.comfy_path import REPO_ROOT
from tests.host import PACK_NAME

WORKFLOW_DIR = REPO_ROOT / "workflows"
WORKFLOWS = sorted(WORKFLOW_DIR.glob("*.json"))
EXPECTED = {
    "ralu_flux_4x.json": "flux_4x",
    "ralu_flux_7x.json": "flux_7x",
    "ralu_flux_schnell.json": "flux_schnell",
    "ralu_sd3_2x.json": "sd3_2x",
    "ralu_sd3_3x.json": "sd3_3x",
}
SIZE = 256
# The comparison path is the same graph at 50 (FLUX) or 28 (SD3) steps; on 2 CPU cores the 1-block test
# FLUX takes about 1-3 s per step at 256x256 (more when other jobs share the cores), so 50 steps alone
# would blow this file's ~3 minute budget. The test runs the comparison graph exactly as shipped except
# for the step count; `make demo` runs all the steps.
BASELINE_TEST_STEPS = 2
TITLE_BAR = 30  # litegraph draws a node's title bar above its pos
# File names a FLUX.1-dev or SD3 Medium user has; the test server lists only the test models, so these
# are checked by name rather than against the combo options.
STOCK_MODEL_NAMES = {
    ("UNETLoader", "unet_name"): {STOCK_MODELS["unet_name"], STOCK_SCHNELL_MODELS["unet_name"]},
    ("DualCLIPLoader", "clip_name1"): set(STOCK_MODELS["clip_names"]),
    ("DualCLIPLoader", "clip_name2"): set(STOCK_MODELS["clip_names"]),
    ("VAELoader", "vae_name"): {STOCK_MODELS["vae_name"]},
    ("CheckpointLoaderSimple", "ckpt_name"): {STOCK_SD3_CHECKPOINT},
}


@dataclass(frozen=True)
class Stock:
    """What a family's workflows do besides RALU: the stock graph's sampling and the plain comparison."""

    model: str  # as the comparison group's title names it
    positive_from: str  # the node type RALU KSampler's positive input comes from
    cfg: float
    baseline_steps: int
    scheduler: str
    baseline_prefix: str  # SaveImage prefix of the comparison
    note_words: tuple[str, ...]  # what the notes must mention besides the common words
    edge_source: str = "vae"  # RALU KSampler's: "latent gradient" where a decode costs a real share


STOCK = {
    # FLUX.1-dev is guidance-distilled: cfg 1 with FluxGuidance, no negative prompt.
    "flux": Stock(
        "FLUX.1-dev", "FluxGuidance", 1.0, 50, "simple", "FLUX_50_steps", ("fluxguidance", "50 steps")
    ),
    # FLUX.1-schnell: its own 4 steps, no guidance input; edges from the latent, without a decode.
    "flux_schnell": Stock(
        "FLUX.1-schnell",
        "CLIPTextEncode",
        1.0,
        4,
        "simple",
        "FLUX_schnell_4_steps",
        ("latent gradient", "4 steps"),
        edge_source="latent gradient",
    ),
    # SD3 Medium as ComfyUI's SD3 example runs it: cfg with a negative prompt, Euler on sgm_uniform.
    "sd3": Stock(
        "SD3 Medium", "CLIPTextEncode", 4.5, 28, "sgm_uniform", "SD3_28_steps", ("negative", "28 steps")
    ),
}
# One workflow per model whose comparison group is run end to end.
COMPARISON_RUNS = ("ralu_flux_4x.json", "ralu_flux_schnell.json", "ralu_sd3_2x.json")


def model_of(path: Path) -> str:
    """The model the workflow's preset is for (ralu.plan.Plan.model): "flux", "flux_schnell" or "sd3"."""
    return PRESETS[EXPECTED[path.name]].model


workflow_params = pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])


@pytest.fixture(scope="module")
def object_info(comfy_host) -> dict:
    return comfy_host.object_info()


def nodes_of(workflow: dict, type_: str) -> list[dict]:
    return [n for n in workflow["nodes"] if n["type"] == type_]


def one(workflow: dict, type_: str, **where) -> dict:
    found = [n for n in nodes_of(workflow, type_) if all(n.get(k) == v for k, v in where.items())]
    assert len(found) == 1, f"expected one {type_} {where or ''}, found {len(found)}"
    return found[0]


def spec_type(spec):
    return "COMBO" if isinstance(spec[0], list) else spec[0]


def spec_options(spec) -> dict:
    return spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}


def combo_options(spec) -> list:
    return spec[0] if isinstance(spec[0], list) else spec_options(spec).get("options", [])


def all_input_specs(node_def: dict) -> dict:
    return {**node_def["input"].get("required", {}), **node_def["input"].get("optional", {})}


def linked_source(workflow: dict, node: dict, input_name: str) -> dict | None:
    """The node an input is linked from (None if unlinked)."""
    entry = next((i for i in node.get("inputs", []) if i["name"] == input_name), None)
    if entry is None or entry.get("link") is None:
        return None
    link = link_table(workflow)[entry["link"]]
    return next(n for n in workflow["nodes"] if n["id"] == link["origin_id"])


# ----------------------------------------------------------------------------- shipped and listed
def test_the_workflows_are_shipped():
    assert sorted(p.name for p in WORKFLOWS) == sorted(EXPECTED)
    # ComfyUI lists example_workflows/ AND workflows/: a second copy or a symlink would list each twice.
    assert not (REPO_ROOT / "example_workflows").exists()


def test_comfyui_lists_and_serves_them_as_templates(comfy_host):
    listed = comfy_host.get_json("/api/workflow_templates")
    assert sorted(listed.get(PACK_NAME, [])) == sorted(p.stem for p in WORKFLOWS)
    for path in WORKFLOWS:
        status, raw = comfy_host.request("GET", f"/api/workflow_templates/{PACK_NAME}/{path.name}")
        assert status == 200 and raw == path.read_bytes()


def test_each_template_has_its_thumbnail(comfy_host):
    """The template browser shows a custom node's template with the picture of the same name and
    .jpg (the frontend asks for <name>.jpg); tests/browser/test_planner_chart.py makes them."""
    for path in WORKFLOWS:
        thumbnail = path.with_suffix(".jpg")
        assert thumbnail.is_file(), (
            f"no {thumbnail.name}: RALU_UPDATE_SCREENSHOTS=1 on the browser tests makes it"
        )
        status, raw = comfy_host.request("GET", f"/api/workflow_templates/{PACK_NAME}/{thumbnail.name}")
        assert status == 200 and raw == thumbnail.read_bytes()
        assert len(raw) < 100_000
        picture = Image.open(io.BytesIO(raw))
        assert picture.format == "JPEG" and picture.size[0] * 3 == picture.size[1] * 4


# ----------------------------------------------------------------------------- static checks
@workflow_params
def test_every_node_type_exists(path, object_info):
    workflow = load_workflow(path)
    missing = {n["type"] for n in workflow["nodes"]} - set(object_info) - FRONTEND_ONLY_TYPES
    assert not missing, f"{path.name}: node types unknown to the server: {missing}"


@workflow_params
def test_every_widget_value_is_valid(path, object_info):
    workflow = load_workflow(path)
    problems = []
    for node in workflow["nodes"]:
        if node["type"] in NOTE_TYPES:
            assert isinstance(node["widgets_values"][0], str) and node["widgets_values"][0].strip()
            continue
        widgets = widget_inputs(object_info[node["type"]])
        values = list(node.get("widgets_values") or [])
        expected_count = len(widgets) + sum(has_control_widget(name, spec) for name, spec in widgets)
        where = f"{path.name} node {node['id']} ({node['type']})"
        if len(values) != expected_count:
            problems.append(f"{where}: {len(values)} widget values for {expected_count} widgets")
            continue
        for name, spec in widgets:
            value = values.pop(0)
            kind, options = spec_type(spec), spec_options(spec)
            stock = STOCK_MODEL_NAMES.get((node["type"], name))
            if stock is not None:
                ok = value in stock
            elif kind == "COMBO":
                ok = value in combo_options(spec)
            elif kind == "INT":
                ok = isinstance(value, int) and not isinstance(value, bool)
                ok = ok and options.get("min", value) <= value <= options.get("max", value)
            elif kind == "FLOAT":
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
                ok = ok and options.get("min", value) <= value <= options.get("max", value)
            elif kind == "BOOLEAN":
                ok = isinstance(value, bool)
            else:
                ok = isinstance(value, str)
            if not ok:
                problems.append(
                    f"{where}: {name} = {value!r} is not valid for {kind} {options or combo_options(spec)}"
                )
            if has_control_widget(name, spec):
                control = values.pop(0)
                if control != "fixed":  # the comparison needs the same seed every run
                    problems.append(f"{where}: {name}'s control_after_generate is {control!r}, not 'fixed'")
                assert control in CONTROL_VALUES
    assert not problems, "\n".join(problems)


@workflow_params
def test_links_connect_matching_types_and_nothing_dangles(path, object_info):
    workflow = load_workflow(path)
    nodes = {n["id"]: n for n in workflow["nodes"]}
    assert len(nodes) == len(workflow["nodes"]), "duplicate node ids"
    assert workflow["last_node_id"] >= max(nodes)
    links = link_table(workflow)
    assert len(links) == len(workflow["links"]), "duplicate link ids"
    assert workflow["last_link_id"] >= max(links)
    for lid, link in links.items():
        source, target = nodes.get(link["origin_id"]), nodes.get(link["target_id"])
        assert source is not None and target is not None, f"link {lid} ends at a missing node"
        out = source["outputs"][link["origin_slot"]]
        inp = target["inputs"][link["target_slot"]]
        assert lid in out["links"] and inp["link"] == lid, f"link {lid} is not recorded on both ends"
        server_out = object_info[source["type"]]["output"][link["origin_slot"]]
        server_in = spec_type(all_input_specs(object_info[target["type"]])[inp["name"]])
        assert link["type"] == out["type"] == server_out == inp["type"] == server_in, (
            f"link {lid}: {source['type']}.{out['name']} ({server_out}) -> {target['type']}.{inp['name']} "
            f"({server_in}) carries {link['type']}"
        )
    for node in workflow["nodes"]:  # every link id a node refers to exists and points back at it
        for slot, inp in enumerate(node.get("inputs") or []):
            if inp.get("link") is not None:
                assert (
                    links[inp["link"]]["target_id"] == node["id"]
                    and links[inp["link"]]["target_slot"] == slot
                )
        for slot, out in enumerate(node.get("outputs") or []):
            assert (
                object_info.get(node["type"], {}).get("output", [out["type"]] * (slot + 1))[slot]
                == out["type"]
            )
            for lid in out.get("links") or []:
                assert links[lid]["origin_id"] == node["id"] and links[lid]["origin_slot"] == slot


@workflow_params
def test_every_required_input_of_a_running_node_is_connected(path, object_info):
    workflow = load_workflow(path)
    for node in workflow["nodes"]:
        if node["type"] in FRONTEND_ONLY_TYPES:
            continue
        required = object_info[node["type"]]["input"].get("required", {})
        sockets = {
            name
            for name, spec in required.items()
            if spec_type(spec) not in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
        }
        linked = {i["name"] for i in node.get("inputs") or [] if i.get("link") is not None}
        assert sockets <= linked, (
            f"{path.name} node {node['id']} ({node['type']}): unconnected {sockets - linked}"
        )


def check_flux_loaders(workflow: dict, ralu: dict, unet_name: str = "flux1-dev.safetensors") -> None:
    unet = one(workflow, "UNETLoader")
    assert unet["widgets_values"] == [unet_name, "default"]
    clip = one(workflow, "DualCLIPLoader")
    assert clip["widgets_values"][:3] == ["t5xxl_fp16.safetensors", "clip_l.safetensors", "flux"]
    vae = one(workflow, "VAELoader")
    assert vae["widgets_values"] == ["ae.safetensors"]
    assert linked_source(workflow, ralu, "model") is unet
    assert linked_source(workflow, ralu, "vae") is vae
    texts = sorted(n["widgets_values"][0] for n in nodes_of(workflow, "CLIPTextEncode"))
    assert texts[0] == "" and len(texts[1]) > 40  # an empty negative (unused at cfg 1) and a real prompt


def check_flux_dev_loaders(workflow: dict, ralu: dict) -> None:
    check_flux_loaders(workflow, ralu)
    guidance = one(workflow, "FluxGuidance")
    assert guidance["widgets_values"] == [3.5]
    assert linked_source(workflow, guidance, "conditioning")["type"] == "CLIPTextEncode"


def check_flux_schnell_loaders(workflow: dict, ralu: dict) -> None:
    check_flux_loaders(workflow, ralu, STOCK_SCHNELL_MODELS["unet_name"])
    assert not nodes_of(workflow, "FluxGuidance")  # schnell has no guidance input


def check_sd3_loaders(workflow: dict, ralu: dict) -> None:
    # ComfyUI's SD3 example: one checkpoint with the text encoders and the VAE; no separate loaders.
    checkpoint = one(workflow, "CheckpointLoaderSimple")
    assert checkpoint["widgets_values"] == [STOCK_SD3_CHECKPOINT]
    assert not {"UNETLoader", "DualCLIPLoader", "TripleCLIPLoader", "VAELoader", "FluxGuidance"} & {
        n["type"] for n in workflow["nodes"]
    }
    assert linked_source(workflow, ralu, "model") is checkpoint
    assert linked_source(workflow, ralu, "vae") is checkpoint
    for name in ("positive", "negative"):
        encoder = linked_source(workflow, ralu, name)
        assert encoder["type"] == "CLIPTextEncode" and linked_source(workflow, encoder, "clip") is checkpoint
    positive, negative = (
        linked_source(workflow, ralu, name)["widgets_values"][0] for name in ("positive", "negative")
    )
    assert len(positive) > 40 and negative.strip()  # a real prompt and a real negative prompt


@workflow_params
def test_the_graph_is_the_documented_one(path):
    workflow = load_workflow(path)
    preset = EXPECTED[path.name]
    model = model_of(path)
    stock = STOCK[model]
    ralu = one(workflow, "RALUKSampler")
    checks = {
        "flux": check_flux_dev_loaders,
        "flux_schnell": check_flux_schnell_loaders,
        "sd3": check_sd3_loaders,
    }
    checks[model](workflow, ralu)
    assert one(workflow, "EmptySD3LatentImage")["widgets_values"] == [1024, 1024, 1]
    planner = one(workflow, "RALUStagePlanner")
    assert planner["widgets_values"][0] == preset
    assert planner["widgets_values"][12] == model  # estimate_for: the model of a custom plan
    seed, control, cfg, edge_source, _ = ralu["widgets_values"]
    assert (control, cfg, edge_source) == ("fixed", stock.cfg, stock.edge_source)
    assert linked_source(workflow, ralu, "positive")["type"] == stock.positive_from
    assert linked_source(workflow, ralu, "plan") is planner
    saves = {n["widgets_values"][0]: n for n in nodes_of(workflow, "SaveImage")}
    assert set(saves) == {f"RALU_{preset}", stock.baseline_prefix}
    assert (
        linked_source(workflow, linked_source(workflow, saves[f"RALU_{preset}"], "images"), "samples") is ralu
    )
    mask_to_image = one(workflow, "MaskToImage")
    assert linked_source(workflow, mask_to_image, "mask") is ralu  # early_mask -> MaskToImage -> PreviewImage
    assert linked_source(workflow, one(workflow, "PreviewImage"), "images") is mask_to_image
    # The comparison: same model, conditioning, latent, seed and cfg; Euler on the stock graph's schedule
    # at the stock step count; not running.
    base = one(workflow, "KSampler")
    assert base["widgets_values"] == [
        seed,
        "fixed",
        stock.baseline_steps,
        stock.cfg,
        "euler",
        stock.scheduler,
        1.0,
    ]
    for name in ("model", "positive", "negative", "latent_image"):
        assert linked_source(workflow, base, name) is linked_source(workflow, ralu, name)
    base_decode = linked_source(workflow, saves[stock.baseline_prefix], "images")
    assert linked_source(workflow, base_decode, "samples") is base
    assert linked_source(workflow, base_decode, "vae") is linked_source(workflow, ralu, "vae")
    group = find_group(workflow, BASELINE_GROUP)
    assert group["title"].startswith(f"Comparison: plain {stock.model}, {stock.baseline_steps} steps")
    members = {n["id"] for n in nodes_in_group(workflow, BASELINE_GROUP) if n["type"] not in NOTE_TYPES}
    assert members == {base["id"], base_decode["id"], saves[stock.baseline_prefix]["id"]}
    for node in workflow["nodes"]:
        disabled = node["mode"] in (MODE_NEVER, MODE_BYPASS)
        assert disabled == (node["id"] in members), f"node {node['id']} ({node['type']}) mode {node['mode']}"
    notes = " ".join(n["widgets_values"][0] for n in workflow["nodes"] if n["type"] in NOTE_TYPES).lower()
    for words in ("speed-up", "mask", "set group nodes to always", "cfg", *stock.note_words):
        assert words in notes, f"the notes should mention {words!r}"


@workflow_params
def test_layout_has_no_overlapping_nodes_or_groups(path):
    workflow = load_workflow(path)

    def overlap(a, b):
        return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]

    rects = {}
    for node in workflow["nodes"]:
        (x, y), (w, h) = node["pos"], node["size"]
        rects[node["id"]] = (x, y - TITLE_BAR, x + w, y + h)
    ids = sorted(rects)
    clashes = [(a, b) for i, a in enumerate(ids) for b in ids[i + 1 :] if overlap(rects[a], rects[b])]
    assert not clashes, f"{path.name}: overlapping nodes {clashes}"
    groups = [(x, y, x + w, y + h) for x, y, w, h in (g["bounding"] for g in workflow["groups"])]
    assert not [(a, b) for i, a in enumerate(groups) for b in groups[i + 1 :] if overlap(a, b)]
    for node in workflow["nodes"]:  # a node is in one group or none, never across a group's edge
        r = rects[node["id"]]
        for g in groups:
            inside = g[0] <= r[0] and r[2] <= g[2] and g[1] <= r[1] and r[3] <= g[3]
            assert inside or not overlap(r, g), f"node {node['id']} straddles group {g}"


@workflow_params
def test_conversion_leaves_the_muted_comparison_out_until_it_is_enabled(path, object_info):
    stock = STOCK[model_of(path)]
    workflow = load_workflow(path)
    prompt = to_api(workflow, object_info)
    assert "KSampler" not in {n["class_type"] for n in prompt.values()}
    assert not find_nodes(prompt, "SaveImage", filename_prefix=stock.baseline_prefix)
    enabled = to_api(set_group_mode(workflow, BASELINE_GROUP, MODE_ALWAYS), object_info)
    assert len(enabled) == len(prompt) + 3
    (ksampler,) = find_nodes(enabled, "KSampler")
    (ralu,) = find_nodes(enabled, "RALUKSampler")
    for name in ("seed", "cfg"):
        assert enabled[ksampler]["inputs"][name] == enabled[ralu]["inputs"][name]
    assert enabled[ksampler]["inputs"]["steps"] == stock.baseline_steps


# ----------------------------------------------------------------------------- end to end
def image_refs(entry: dict, node_id: str) -> list[dict]:
    return entry["outputs"].get(node_id, {}).get("images", [])


def stand_ins_for(path: Path, **extra) -> dict:
    return replacements_for_test_models(SIZE, SIZE, model=model_of(path), **extra)


@workflow_params
def test_the_stock_loaders_become_the_test_models(path, object_info):
    """What the end-to-end runs load: each family's test model, CLIP-L and tiny VAE, in loaders the
    server has, wired where the stock loaders' outputs went (SD3's checkpoint becomes three loaders)."""
    model = model_of(path)
    shipped = to_api(set_group_mode(load_workflow(path), BASELINE_GROUP, MODE_ALWAYS), object_info)
    prompt = substitute(shipped, stand_ins_for(path))
    loaders = {n["class_type"]: n["inputs"] for n in prompt.values() if n["class_type"].endswith("Loader")}
    unet, vae = {
        "flux": ("ralu_test_flux_dev.safetensors", "taef1"),
        "flux_schnell": ("ralu_test_flux_schnell.safetensors", "taef1"),
        "sd3": ("ralu_test_sd3.safetensors", "taesd3"),
    }[model]
    assert loaders == {
        "UNETLoader": {"unet_name": unet, "weight_dtype": "default"},
        "CLIPLoader": {"clip_name": "ralu_test_clip_l.safetensors", "type": "sd3", "device": "default"},
        "VAELoader": {"vae_name": vae},
    }
    for node in prompt.values():
        for name, value in node["inputs"].items():
            if isinstance(value, list):  # a link: from a node of the prompt, of the type the input takes
                source = prompt[value[0]]["class_type"]
                wanted = all_input_specs(object_info[node["class_type"]])[name][0]
                assert object_info[source]["output"][value[1]] == wanted, (node["class_type"], name, source)
    (ralu,) = find_nodes(prompt, "RALUKSampler")
    (ksampler,) = find_nodes(prompt, "KSampler")
    for name in ("model", "positive", "negative", "latent_image"):
        assert prompt[ralu]["inputs"][name] == prompt[ksampler]["inputs"][name]


@workflow_params
def test_the_ralu_part_runs_end_to_end_on_the_test_models(path, comfy_host, object_info):
    preset = EXPECTED[path.name]
    prompt = substitute(to_api(load_workflow(path), object_info), stand_ins_for(path))
    assert {n["class_type"] for n in prompt.values()} >= {"CLIPLoader", "RALUKSampler", "SaveImage"}
    entry = comfy_host.run(prompt, timeout=240)

    (save,) = find_nodes(prompt, "SaveImage", filename_prefix=f"RALU_{preset}")
    (image,) = comfy_host.output_images(entry, [save])
    assert image_refs(entry, save)[0]["type"] == "output"
    assert (image.format, image.size) == ("PNG", (SIZE, SIZE))
    (preview,) = find_nodes(prompt, "PreviewImage")
    (mask,) = comfy_host.output_images(entry, [preview])
    assert mask.size == (SIZE, SIZE)
    assert 0 < sum(mask.convert("L").histogram()[128:]) < SIZE * SIZE  # white on some cells, not all
    (sampler,) = find_nodes(prompt, "RALUKSampler")
    text = " ".join(entry["outputs"][sampler]["text"])
    tokens = [int(t) for t in re.search(r"tokens per stage: (\d+), (\d+), (\d+)", text).groups()]
    low = (SIZE // 32) ** 2
    up_ratio = PRESETS[preset].up_ratio
    assert tokens == [low, low + 3 * int(low * up_ratio), (SIZE // 16) ** 2]
    assert not find_nodes(prompt, "KSampler")  # the muted comparison did not run


@pytest.mark.parametrize("name", COMPARISON_RUNS)
def test_the_comparison_runs_on_the_same_seed_when_enabled(comfy_host, object_info, name):
    path = WORKFLOW_DIR / name
    prefix = STOCK[model_of(path)].baseline_prefix
    workflow = set_group_mode(load_workflow(path), BASELINE_GROUP, MODE_ALWAYS)
    prompt = to_api(workflow, object_info)
    (save,) = find_nodes(prompt, "SaveImage", filename_prefix=prefix)
    (ksampler,) = find_nodes(prompt, "KSampler")
    (ralu,) = find_nodes(prompt, "RALUKSampler")
    assert prompt[ksampler]["inputs"]["seed"] == prompt[ralu]["inputs"]["seed"]
    prompt = prune_to(prompt, [save])  # only the comparison path; the RALU part ran above
    prompt = substitute(prompt, stand_ins_for(path, steps=BASELINE_TEST_STEPS))
    entry = comfy_host.run(prompt, timeout=240)
    (image,) = comfy_host.output_images(entry, [save])
    assert (image.format, image.size) == ("PNG", (SIZE, SIZE))
    assert image_refs(entry, save)[0]["filename"].startswith(prefix)


def test_every_model_has_a_comparison_run():
    assert sorted(model_of(WORKFLOW_DIR / name) for name in COMPARISON_RUNS) == sorted(STOCK)


# ----------------------------------------------------------------------------- converter semantics
# ComfyUI's rules for what the frontend sends, on a made-up graph (no server needed).
def test_the_workflow_files_are_plain_json_in_the_ui_format():
    for path in WORKFLOWS:
        workflow = json.loads(Path(path).read_text(encoding="utf-8"))
        assert workflow["version"] == 0.4
        assert set(workflow) >= {
            "last_node_id",
            "last_link_id",
            "nodes",
            "links",
            "groups",
            "config",
            "extra",
        }
        for node in workflow["nodes"]:
            assert set(node) >= {
                "id",
                "type",
                "pos",
                "size",
                "flags",
                "order",
                "mode",
                "inputs",
                "outputs",
                "properties",
                "widgets_values",
            }
            if node["type"] not in NOTE_TYPES:
                assert node["properties"]["Node name for S&R"] == node["type"]
        order = {n["id"]: n["order"] for n in workflow["nodes"]}
        assert sorted(order.values()) == list(range(len(order)))
        assert all(order[link[1]] < order[link[3]] for link in workflow["links"])  # a topological order
