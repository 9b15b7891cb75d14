"""This pack in the real ComfyUI frontend (headless Chromium, playwright's sync API): the extensions
load, the node library knows our nodes, a graph queued from the UI runs with the Stage Planner's chart
on it (never saved in the workflow nor sent in the prompt; test_planner_chart.py tests the chart), and
the shipped workflows load cleanly and convert to the same prompt as scripts/workflow_api.py."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest
from PIL import Image

from tests.comfy_path import REPO_ROOT
from tests.host import PACK_NAME

from .frontend_js import (
    ADD_NODE,
    BUILD_EDGE_MASK_GRAPH,
    GRAPH_NODES,
    HOOK_LOAD_DIALOGS,
    LOAD_GRAPH,
    NO_DIALOG_OPEN,
    NODE_LIBRARY,
    PROMPT_OF_NODE,
    PROMPT_OUTPUT,
    QUEUE_FROM_UI,
    REGISTERED,
    REMOVE_NODE,
    RUN_FINISHED,
    RUN_TIMEOUT_MS,
    SERIALIZED_NODE,
    SET_GROUP_MODE,
    SUMMARY_SHOWN,  # noqa: F401  (test_ksampler_ui imports it from here)
    SUMMARY_STATE,  # noqa: F401
    SUMMARY_TIMEOUT_MS,
    WATCH_EXECUTION,
)

# app.registerExtension({name}) in each of web/*.js
EXTENSIONS = {
    f"/extensions/{PACK_NAME}/ralu_summary.js": "ComfyUI-RALU.summary",
    f"/extensions/{PACK_NAME}/ralu_planner.js": "ComfyUI-RALU.planner",
}
SUMMARY_WIDGET = "ralu_summary"
CHART_WIDGET = "ralu_plan_chart"
OUR_NODES = {
    "RALUStagePlanner": "RALU Stage Planner",
    "RALUEdgeMask": "RALU Edge Mask",
    "RALUKSampler": "RALU KSampler",
}
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
WORKFLOWS = sorted((REPO_ROOT / "workflows").glob("*.json"))
CONVERTER_PATH = REPO_ROOT / "scripts" / "workflow_api.py"
SQUARE_IMAGE = "ralu_frontend_square.png"
# Planner size inputs that no other test uses: the server then cannot answer from its cache, which
# would send no `executed` message for the planner (see test_queueing_from_the_ui).
PLAN_WIDTH, PLAN_HEIGHT = 1152, 896


PLANNER_CHART_FOR = """({id, width}) => app.graph.getNodeById(id).raluPlanPreview?.width === width"""
PLANNER_CHART = """(id) => {
  const node = app.graph.getNodeById(id);
  const chart = node.widgets.find((w) => w.name === "ralu_plan_chart");
  return {title: chart.element.title, widget_names: node.widgets.map((w) => w.name),
          values: node.widgets.filter((w) => w !== chart).map((w) => w.value)};
}"""


# ------------------------------------------------------------------------------------ helpers
def widget_names(node_def: dict) -> list[str]:
    """The frontend's widgets of a node definition, in order: its widget-type inputs (required, then
    optional, in input_order) and the 'control_after_generate' combo after each input that has one."""
    names = []
    order = node_def.get("input_order") or {}
    for section in ("required", "optional"):
        specs = node_def["input"].get(section) or {}
        for name in order.get(section) or list(specs):
            kind, *rest = specs[name]
            options = rest[0] if rest and isinstance(rest[0], dict) else {}
            if options.get("forceInput") or not (isinstance(kind, list) or kind in WIDGET_TYPES):
                continue
            names.append(name)
            if options.get("control_after_generate"):
                names.append("control_after_generate")
    return names


def load_in_frontend(page, workflow: dict) -> list[dict]:
    """app.loadGraphData(workflow); the missing-node / missing-model dialogs it asked for (then closed)."""
    page.evaluate(HOOK_LOAD_DIALOGS)
    page.evaluate(LOAD_GRAPH, workflow)
    dialogs = page.evaluate("() => window.__raluDialogs")
    for _ in range(5):
        if page.evaluate(NO_DIALOG_OPEN):
            break
        page.keyboard.press("Escape")
        page.wait_for_timeout(100)
    page.wait_for_function(NO_DIALOG_OPEN, timeout=5_000)
    return dialogs


def converter():
    """scripts/workflow_api.py as a module, or skip while it does not exist."""
    if not CONVERTER_PATH.is_file():
        pytest.skip(f"{CONVERTER_PATH.relative_to(REPO_ROOT)} does not exist")
    name = "ralu_workflow_api_under_test"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, CONVERTER_PATH)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def without_meta(prompt: dict) -> dict:
    return {node_id: {"class_type": n["class_type"], "inputs": n["inputs"]} for node_id, n in prompt.items()}


@pytest.fixture(scope="module")
def object_info(comfy_host) -> dict:
    return comfy_host.object_info()


@pytest.fixture(scope="module")
def square_image(comfy_host) -> str:
    """256x256: a white square on black in the test server's input folder."""
    pixels = np.zeros((256, 256, 3), dtype=np.uint8)
    pixels[80:176, 80:176] = 255
    comfy_host.input_dir.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(comfy_host.input_dir / SQUARE_IMAGE)
    return SQUARE_IMAGE


# ------------------------------------------------------------------------------------ tests
def test_extensions_are_served_and_loaded(page, comfy_host, frontend_log):
    served = comfy_host.get_json("/extensions")
    for url, name in EXTENSIONS.items():
        assert url in served
        assert page.evaluate("(name) => app.extensions.some((e) => e.name === name)", name), (
            f"the frontend did not register {name!r} (from {url})"
        )
        fetched = [u for u in frontend_log.requested if u.split("?")[0].endswith(url)]
        assert fetched, f"the page never requested {url}"
    ours = frontend_log.mentioning("ralu", PACK_NAME)
    assert not ours, "the page reported problems with this pack:\n" + "\n".join(ours)
    # Only the frontend's public API: an import of its internals may break on any update.
    internal = [w for w in frontend_log.console_warnings if "not part of the public API" in w]
    assert not internal, "\n".join(internal)


def test_node_library_knows_our_nodes(page, object_info):
    library = page.evaluate(NODE_LIBRARY, list(OUR_NODES))
    for entry in library:
        node_type = entry["type"]
        assert not entry.get("missing"), f"{node_type} is not registered in the frontend"
        assert entry["display_name"] == OUR_NODES[node_type] == object_info[node_type]["display_name"]
        assert entry["title"] == OUR_NODES[node_type]
        assert entry["category"] == object_info[node_type]["category"] == "sampling/RALU"


def test_planner_added_by_type_shows_its_widgets_with_tooltips(page, object_info):
    node_def = object_info["RALUStagePlanner"]
    added = page.evaluate(ADD_NODE, "RALUStagePlanner")
    try:
        assert added["in_graph"]
        names = [w["name"] for w in added["widgets"]]
        assert names[-1] == CHART_WIDGET  # the chart, under the inputs' widgets
        names = names[:-1]
        assert names == widget_names(node_def)
        assert names[:4] == ["preset", "n1", "n2", "n3"]
        assert SUMMARY_WIDGET not in names  # only after the node has run
        required = node_def["input"]["required"]
        for widget in added["widgets"][:-1]:
            spec = required[widget["name"]][1]
            assert widget["value"] == spec["default"], widget
            tooltip = added["tooltips"].get(widget["name"])
            assert tooltip, f"no tooltip for {widget['name']!r} in the frontend's node definition"
            assert tooltip == spec["tooltip"]
    finally:
        page.evaluate(REMOVE_NODE, added["id"])


def test_queueing_from_the_ui(page, comfy_host, frontend_log, square_image, object_info,
                                            screenshot_dir):  # fmt: skip
    ids = page.evaluate(
        BUILD_EDGE_MASK_GRAPH, {"image": square_image, "width": PLAN_WIDTH, "height": PLAN_HEIGHT}
    )
    page.evaluate(WATCH_EXECUTION)
    page.evaluate(QUEUE_FROM_UI)
    page.wait_for_function(RUN_FINISHED, timeout=RUN_TIMEOUT_MS)
    events = page.evaluate("() => window.__raluRun.events")
    finished = [e for e in events if e["type"] != "executed" and e["type"] != "execution_start"]
    assert [e["type"] for e in finished] == ["execution_success"], f"{events}\n{comfy_host.log_tail()}"
    prompt_id = finished[0]["prompt_id"]
    executed = {e["node"] for e in events if e["type"] == "executed"}
    assert {str(ids["planner"]), str(ids["edges"]), str(ids["save"])} <= executed, events

    entry = comfy_host.history(prompt_id)
    assert entry["status"]["status_str"] == "success"
    mask = np.asarray(comfy_host.output_images(entry)[0].convert("L"))
    assert mask.shape == (256, 256) and mask.max() == 255  # the edge cells are white

    # The Planner shows its chart (drawn from its widgets), with the summary it ran with as its hover
    # text, and no text box.
    page.wait_for_function(PLANNER_CHART_FOR, arg={"id": ids["planner"], "width": PLAN_WIDTH},
                           timeout=SUMMARY_TIMEOUT_MS)  # fmt: skip
    chart = page.evaluate(PLANNER_CHART, ids["planner"])
    [summary] = entry["outputs"][str(ids["planner"])]["text"]
    assert f"{PLAN_WIDTH}x{PLAN_HEIGHT}" in summary  # the estimate is for the node's own size
    assert chart["title"] == summary
    assert SUMMARY_WIDGET not in chart["widget_names"] and chart["widget_names"][-1] == CHART_WIDGET

    # Output only: not among the saved widget values ...
    widget_values = chart["values"]
    saved = page.evaluate(SERIALIZED_NODE, ids["planner"])
    assert saved["widgets_values"] == widget_values
    assert not any("RALU plan" in str(v) for v in saved["widgets_values"])
    # ... nor in the prompt the UI sends.
    sent = page.evaluate(PROMPT_OF_NODE, ids["planner"])
    inputs = sent["output"]["inputs"]
    assert sent["output"]["class_type"] == "RALUStagePlanner"
    assert set(inputs) == set(object_info["RALUStagePlanner"]["input"]["required"])
    assert CHART_WIDGET not in inputs and not any("RALU plan" in str(v) for v in inputs.values())
    assert sent["workflow_node"]["widgets_values"] == widget_values

    path = screenshot_dir / "ralu_frontend.png"
    page.screenshot(path=str(path))
    print(f"\nscreenshot: {path}", file=sys.stderr)
    ours = frontend_log.mentioning("ralu", PACK_NAME)
    assert not ours, "the page reported problems with this pack:\n" + "\n".join(ours)


@pytest.mark.parametrize("workflow_path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_workflow_loads_cleanly(page, frontend_log, object_info, workflow_path):
    workflow = json.loads(workflow_path.read_text())
    mark = frontend_log.mark()
    dialogs = load_in_frontend(page, workflow)

    missing_nodes = [d["items"] for d in dialogs if d["name"] == "showMissingNodesError"]
    assert not missing_nodes, f"missing node types: {missing_nodes}"
    # The test server has none of the stock FLUX files: the frontend lists those the nodes declare in
    # properties.models (with download links), each under a model folder the server knows (frontend
    # 1.32 through app.showMissingModelsError; 1.49 has none to watch, and the loop finds none).
    declared = {
        (m["name"], m["directory"])
        for n in workflow["nodes"]
        for m in n.get("properties", {}).get("models", [])
    }
    for dialog in (d for d in dialogs if d["name"] == "showMissingModelsError"):
        for model in dialog["items"]:
            assert (model["name"], model["directory"]) in declared, model
            assert not model.get("directory_invalid"), (
                f"the server has no model folder {model['directory']!r}"
            )
    for node in workflow["nodes"]:
        for model in node.get("properties", {}).get("models", []):
            assert model["name"] in (node.get("widgets_values") or []), (node["id"], model)
    problems = frontend_log.since(mark)
    assert not problems, f"loading {workflow_path.name}:\n" + "\n".join(problems)

    types = sorted({n["type"] for n in workflow["nodes"]})
    assert page.evaluate(REGISTERED, types) == []
    loaded = {n["id"]: n for n in page.evaluate(GRAPH_NODES)}  # ids as strings (frontend_js.py)
    assert sorted(loaded) == sorted(str(n["id"]) for n in workflow["nodes"])
    for node in workflow["nodes"]:
        assert loaded[str(node["id"])]["type"] == node["type"]
        assert loaded[str(node["id"])]["mode"] == node.get("mode", 0)
        if node["type"] not in OUR_NODES:
            continue
        names = widget_names(object_info[node["type"]])
        frontend = loaded[str(node["id"])]["widgets"]
        assert [name for name, _ in frontend] == names, node["id"]
        assert len(node["widgets_values"]) == len(names), node["id"]
        assert dict(frontend) == dict(zip(names, node["widgets_values"])), node["id"]


def _variants():
    for path in WORKFLOWS:
        yield pytest.param(path, None, id=f"{path.name}-as-saved")
        yield pytest.param(path, 0, id=f"{path.name}-baseline-always")
        yield pytest.param(path, 4, id=f"{path.name}-baseline-bypassed")


@pytest.mark.parametrize(("workflow_path", "baseline_mode"), list(_variants()))
def test_converter_matches_the_frontend(page, object_info, workflow_path, baseline_mode):
    """graphToPrompt() of the loaded workflow == scripts/workflow_api.py's to_api() of the file, also with
    the muted comparison group switched on (mode 0) or bypassed (mode 4) in both."""
    api = converter()
    workflow = api.load_workflow(workflow_path)
    load_in_frontend(page, workflow)
    if baseline_mode is not None:
        prefix = api.BASELINE_GROUP
        members = page.evaluate(SET_GROUP_MODE, {"prefix": prefix, "mode": baseline_mode})
        if members is None:
            pytest.skip(f"{workflow_path.name} has no group {prefix!r}")
        assert sorted(members) == sorted(str(n["id"]) for n in api.nodes_in_group(workflow, prefix))
        workflow = api.set_group_mode(workflow, prefix, baseline_mode)
    frontend = page.evaluate(PROMPT_OUTPUT)
    expected = api.to_api(workflow, object_info)
    assert without_meta(frontend) == without_meta(expected)


@pytest.mark.parametrize("workflow_path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_converter_titles_match_the_frontend(page, object_info, workflow_path):
    """_meta.title (what error messages name a node by): the node's title, else its display name."""
    api = converter()
    workflow = api.load_workflow(workflow_path)
    load_in_frontend(page, workflow)
    frontend = page.evaluate(PROMPT_OUTPUT)
    expected = api.to_api(workflow, object_info)
    titles = {k: v.get("_meta", {}).get("title") for k, v in frontend.items()}
    assert {k: v.get("_meta", {}).get("title") for k, v in expected.items()} == titles
