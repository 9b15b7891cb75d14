"""The Stage Planner's chart (web/ralu_planner.js), a workflow with missing model files queued from the
UI (ComfyUI's error, no run), the node help pages (web/docs) and the template browser's entries
(workflows/*.json with their .jpg thumbnails), in the real frontend on the live server.

Screenshots go to the screenshot folder (RALU_SCREENSHOT_DIR, else /tmp): the chart, each shipped
workflow, its template thumbnail, the template browser. With RALU_UPDATE_SCREENSHOTS=1 the tests also
copy the chart to web/docs/RALUStagePlanner.png (help and README), the flux_4x workflow to
docs/images/ and each thumbnail beside its workflow, for committing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from PIL import Image

from tests.comfy_path import REPO_ROOT
from tests.host import PACK_NAME

from .conftest import VIEWPORT
from .frontend_js import (
    ERROR_DETAILS,
    ERROR_REPORTED,
    OPEN_ERROR_DETAILS,
    PROMPT_OF_NODE,
    QUEUE_FROM_UI,
    SERIALIZED_NODE,
    WATCH_EXECUTION,
)
from .test_frontend import OUR_NODES, WORKFLOWS, load_in_frontend

UPDATE = os.environ.get("RALU_UPDATE_SCREENSHOTS", "") not in ("", "0")
HELP_DIR = REPO_ROOT / "web" / "docs"
README_IMAGES = REPO_ROOT / "docs" / "images"
README_WORKFLOW = "ralu_flux_4x"
THUMBNAIL_WIDTH = 480
THUMBNAIL_SPAN = 1100  # graph units around the Planner in a thumbnail
README_WIDTH = 1200
SHOT_SCALE = 0.75
SHOT_MARGIN = 20  # graph units around the graph
CHROME_LEFT, CHROME_TOP = 70, 100  # the frontend's side bar and top bar over the canvas, in pixels
MAX_PICTURE_BYTES = 100_000
CHART_COLORS = ([0x4F, 0x9F, 0xE8], [0xE8, 0xA3, 0x3D], [0x6C, 0xC0, 0x70])  # ralu_planner.js COLORS
ERROR_COLOR = [0xFF, 0x7B, 0x72]
CHART_TIMEOUT_MS = 30_000

ADD_NODE_ALONE = """(type) => {
  app.graph.clear();
  const node = LiteGraph.createNode(type);
  node.pos = [300, 200];
  app.graph.add(node);
  app.canvas.ds.scale = 1;
  app.canvas.ds.offset = [0, 0];
  app.graph.setDirtyCanvas(true, true);
  return node.id;
}"""

SET_WIDGET = """({id, name, value}) => {
  const node = app.graph.getNodeById(id);
  const widget = node.widgets.find((w) => w.name === name);
  widget.value = value;
  widget.callback?.(value);
  app.graph.setDirtyCanvas(true, true);
}"""

# What the chart shows: the data it drew (node.raluPlanPreview / raluPlanError, set by ralu_planner.js),
# a hash of its pixels and how many pixels have each chart colour.
CHART_STATE = """({id, colors}) => {
  const node = app.graph.getNodeById(id);
  const canvas = node?.widgets?.find((w) => w.name === "ralu_plan_chart")?.element;
  if (!canvas || !node.raluChartDraws) return null;
  const r = canvas.getBoundingClientRect();
  const state = {preview: node.raluPlanPreview ?? null, error: node.raluPlanError ?? null,
                 query: node.raluChartQuery ?? null, draws: node.raluChartDraws, title: canvas.title,
                 rect: [r.left, r.top, r.width, r.height], shown: canvas.isConnected && r.width > 0};
  if (!state.shown) return state;
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let hash = 2166136261;
  let painted = 0;
  const counts = colors.map(() => 0);
  for (let i = 0; i < data.length; i += 4) {
    hash = Math.imul(hash ^ (data[i] | (data[i + 1] << 8) | (data[i + 2] << 16)), 16777619);
    hash = Math.imul(hash ^ data[i + 3], 16777619);
    if (data[i + 3] === 0) continue;
    painted += 1;
    colors.forEach((c, k) => {
      if (data[i + 3] === 255 && Math.abs(data[i] - c[0]) + Math.abs(data[i + 1] - c[1])
          + Math.abs(data[i + 2] - c[2]) < 6) counts[k] += 1;
    });
  }
  return {...state, hash: hash >>> 0, painted, counts, pixels: canvas.width * canvas.height};
}"""

CHART_SHOWS = """({id, name, error}) => {
  const node = app.graph.getNodeById(id);
  if (!node?.raluChartDraws) return false;
  if (error) return (node.raluPlanError ?? "").includes(error);
  return !node.raluPlanError && node.raluPlanPreview?.plan.name === name;
}"""

# The node's box on the page (title bar included), for a screenshot of it.
NODE_BOX = """(id) => {
  const node = app.graph.getNodeById(id);
  const ds = app.canvas.ds;
  const r = app.canvas.canvas.getBoundingClientRect();
  const title = LiteGraph.NODE_TITLE_HEIGHT;
  return [r.left + (node.pos[0] + ds.offset[0]) * ds.scale,
          r.top + (node.pos[1] - title + ds.offset[1]) * ds.scale,
          node.size[0] * ds.scale, (node.size[1] + title) * ds.scale];
}"""

# Every node and group of the graph: left, top, right, bottom in graph units.
GRAPH_BOUNDS = """() => {
  const title = LiteGraph.NODE_TITLE_HEIGHT;
  const boxes = [...app.graph.nodes.map((n) => [n.pos[0], n.pos[1] - title, n.size[0], n.size[1] + title]),
                 ...app.graph.groups.map((g) => [...g.pos, ...g.size])];
  return [Math.min(...boxes.map((b) => b[0])), Math.min(...boxes.map((b) => b[1])),
          Math.max(...boxes.map((b) => b[0] + b[2])), Math.max(...boxes.map((b) => b[1] + b[3]))];
}"""

SHOW_AT = """({scale, offset}) => {
  app.canvas.ds.scale = scale;
  app.canvas.ds.offset = offset;
  app.canvas.show_info = false;  // the frame-rate corner
  app.graph.setDirtyCanvas(true, true);
}"""

NODES_OF_TYPE = "(type) => app.graph.nodes.filter((n) => n.type === type).map((n) => n.id)"

FETCH_TEXT = """async (url) => {
  const response = await fetch(app.api.fileURL(url));
  return {status: response.status, type: response.headers.get("content-type"), text: await response.text()};
}"""

FETCH_IMAGE = """async (url) => {
  const response = await fetch(url);
  const blob = await response.blob();
  const bitmap = response.ok ? await createImageBitmap(blob) : null;
  return {status: response.status, type: blob.type, bytes: blob.size,
          size: bitmap ? [bitmap.width, bitmap.height] : null};
}"""

# Select the node and press the selection toolbox's info button, which opens the node help panel.
OPEN_HELP = """async (id) => {
  app.canvas.deselectAll();
  app.canvas.selectNode(app.graph.getNodeById(id));
  app.graph.setDirtyCanvas(true, true);
  for (let i = 0; i < 50; i++) {
    const button = [...document.querySelectorAll(".selection-toolbox button")]
      .find((b) => b.innerHTML.includes("lucide--info"));
    if (button) { button.click(); return true; }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}"""

PANEL_STATE_ABORTED = re.compile(
    r"^request failed: POST \S+/api/settings/Comfy\.RightSidePanel\.IsOpen: net::ERR_ABORTED$"
)

# The help panel shows `text` and every picture of the page, loaded.
HELP_SHOWN = """({text, pictures}) => document.body.innerText.includes(text) && pictures.every((name) =>
  [...document.images].some((img) => img.src.endsWith(`/docs/${name}`) && img.naturalWidth > 0))"""

OPEN_TEMPLATES = "async () => { await app.extensionManager.command.execute('Comfy.BrowseTemplates'); }"

# The template dialog shows one card per name, each with its loaded thumbnail. (Frontend 1.49's dialog
# is no PrimeVue .p-dialog, only a [role=dialog].)
TEMPLATE_CARDS_READY = """(names) => [...document.querySelectorAll(".p-dialog, [role=dialog]")]
  .some((dialog) => {
  const text = dialog.innerText;
  const images = [...dialog.querySelectorAll("img")];
  return names.every((name) => text.includes(name)) && images.length === names.length
    && images.every((img) => img.complete && img.naturalWidth > 0);
})"""


@pytest.fixture(scope="module")
def object_info(comfy_host) -> dict:
    return comfy_host.object_info()


def clip(box, margin=8):
    left, top, width, height = box
    return {"x": max(0, left - margin), "y": max(0, top - margin), "width": width + 2 * margin,
            "height": height + 2 * margin}  # fmt: skip


def keep(path: Path, *targets: Path) -> None:
    """Under RALU_UPDATE_SCREENSHOTS, copy an artifact to where the README, help or template browser
    takes it from."""
    print(f"\nscreenshot: {path}", file=sys.stderr)
    if UPDATE:
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            print(f"updated {target}", file=sys.stderr)


def show_whole_graph(page) -> dict:
    """Enlarge the window so that the whole graph shows at SHOT_SCALE (below 0.6 the frontend draws
    nodes without their widgets) beside the side bar and under the top bar; the graph's box."""
    left, top, right, bottom = page.evaluate(GRAPH_BOUNDS)
    width = (right - left + 2 * SHOT_MARGIN) * SHOT_SCALE
    height = (bottom - top + 2 * SHOT_MARGIN) * SHOT_SCALE
    page.set_viewport_size({"width": int(width + CHROME_LEFT), "height": int(height + CHROME_TOP)})
    offset = [CHROME_LEFT / SHOT_SCALE - left + SHOT_MARGIN, CHROME_TOP / SHOT_SCALE - top + SHOT_MARGIN]
    page.evaluate(SHOW_AT, {"scale": SHOT_SCALE, "offset": offset})
    return {"x": CHROME_LEFT, "y": CHROME_TOP, "width": int(width), "height": int(height)}


def chart(page, node_id):
    return page.evaluate(CHART_STATE, {"id": node_id, "colors": CHART_COLORS + (ERROR_COLOR,)})


def wait_for_chart(page, node_id, name=None, error=None):
    page.wait_for_function(CHART_SHOWS, arg={"id": node_id, "name": name, "error": error},
                           timeout=CHART_TIMEOUT_MS)  # fmt: skip
    page.wait_for_timeout(100)  # the frame that follows the data
    return chart(page, node_id)


def route_json(page, comfy_host, state) -> dict:
    return comfy_host.get_json(f"/ralu/plan_preview?{state['query']}")


# ------------------------------------------------------------------------------------ the chart
def test_the_chart_is_drawn_before_anything_runs_and_follows_the_widgets(
    page, comfy_host, frontend_log, object_info, screenshot_dir
):
    mark = frontend_log.mark()
    node_id = page.evaluate(ADD_NODE_ALONE, "RALUStagePlanner")
    first = wait_for_chart(page, node_id, name="flux_4x")
    widgets = object_info["RALUStagePlanner"]["input"]["required"]
    defaults = {name: spec[1]["default"] for name, spec in widgets.items()}
    sent = dict(parse_qsl(first["query"]))
    assert list(sent) == list(defaults)
    assert all(sent[k] == v if isinstance(v, str) else float(sent[k]) == v for k, v in defaults.items())
    assert first["preview"] == route_json(page, comfy_host, first)
    assert "RALU plan 'flux_4x'" in first["title"] and "estimated speed-up" in first["title"]
    # Each stage's colour is on the chart (its curve and token block), and no error colour.
    assert all(count > 50 for count in first["counts"][:3]), first["counts"]
    assert first["counts"][3] == 0
    assert first["rect"][2] > 200 and first["painted"] > 0.1 * first["pixels"]
    path = screenshot_dir / "ralu_planner_chart.png"
    page.screenshot(path=str(path), clip=clip(page.evaluate(NODE_BOX, node_id)))
    keep(path, HELP_DIR / "RALUStagePlanner.png")

    page.evaluate(SET_WIDGET, {"id": node_id, "name": "preset", "value": "flux_7x"})
    second = wait_for_chart(page, node_id, name="flux_7x")
    assert second["preview"] == route_json(page, comfy_host, second)
    assert second["preview"]["plan"]["steps"] == [2, 3, 5]
    assert [len(s) for s in second["preview"]["sigmas"]] == [3, 4, 6]
    assert second["hash"] != first["hash"] and second["draws"] > first["draws"]

    # A custom plan from the widgets: solved by NT-DM on the server, drawn from its numbers.
    for name, value in (("preset", "custom"), ("n1", 3), ("e2", 0.6), ("width", 1536)):
        page.evaluate(SET_WIDGET, {"id": node_id, "name": name, "value": value})
    custom = wait_for_chart(page, node_id, name="custom")
    page.wait_for_function("(id) => app.graph.getNodeById(id).raluChartQuery.includes('width=1536')",
                           arg=node_id, timeout=CHART_TIMEOUT_MS)  # fmt: skip
    custom = chart(page, node_id)
    assert custom["preview"] == route_json(page, comfy_host, custom)
    assert custom["preview"]["plan"]["steps"] == [3, 6, 7] and custom["preview"]["width"] == 1536
    assert custom["hash"] not in (first["hash"], second["hash"])
    problems = frontend_log.since(mark)
    assert not problems, "\n".join(problems)

    # A value that cannot make a plan: the route's message on the chart, in the error colour.
    page.evaluate(SET_WIDGET, {"id": node_id, "name": "e1", "value": 0.7})
    bad = wait_for_chart(page, node_id, error="e2 (0.6) must be greater than e1 (0.7)")
    assert bad["counts"][3] > 20 and not any(bad["counts"][:3]), bad["counts"]
    assert bad["title"].startswith("e2 (0.6) must be greater than e1 (0.7)")
    assert "Traceback" not in bad["title"]
    # The browser reports the route's 400 (and nothing else went wrong).
    problems = frontend_log.since(mark)
    assert problems and all("/ralu/plan_preview" in p and "400" in p for p in problems), problems

    # Back to flux_4x: the same data as at first, drawn again. (Not pixel for pixel: Chromium moves a
    # canvas that is read back often to another rasterizer, whose anti-aliasing differs.)
    page.evaluate(SET_WIDGET, {"id": node_id, "name": "preset", "value": "flux_4x"})
    page.evaluate(SET_WIDGET, {"id": node_id, "name": "e1", "value": 0.3})
    page.evaluate(SET_WIDGET, {"id": node_id, "name": "e2", "value": 0.45})
    page.evaluate(SET_WIDGET, {"id": node_id, "name": "n1", "value": 5})
    page.evaluate(SET_WIDGET, {"id": node_id, "name": "width", "value": 1024})
    page.wait_for_function("(id) => app.graph.getNodeById(id).raluChartQuery.includes('width=1024')",
                           arg=node_id, timeout=CHART_TIMEOUT_MS)  # fmt: skip
    page.wait_for_timeout(100)
    last = chart(page, node_id)
    assert last["preview"] == first["preview"] and last["query"] == first["query"]
    assert last["draws"] > bad["draws"] and last["error"] is None
    assert all(count > 50 for count in last["counts"][:3]) and last["counts"][3] == 0


def test_the_chart_is_neither_saved_nor_sent(page):
    node_id = page.evaluate(ADD_NODE_ALONE, "RALUStagePlanner")
    wait_for_chart(page, node_id, name="flux_4x")
    saved = page.evaluate(SERIALIZED_NODE, node_id)
    sent = page.evaluate(PROMPT_OF_NODE, node_id)["output"]
    names = list(sent["inputs"])
    assert "ralu_plan_chart" not in names
    assert len(saved["widgets_values"]) == len(names)


# ------------------------------------------------------------------------------------ workflows
@pytest.mark.parametrize("workflow_path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_each_workflow_shows_its_plan_on_loading(page, frontend_log, workflow_path, screenshot_dir):
    """No run: the chart of a loaded workflow (as after a reload) shows its Planner's preset. The
    screenshot is the workflow's picture in the README and its template thumbnail."""
    workflow = json.loads(workflow_path.read_text())
    mark = frontend_log.mark()
    dialogs = load_in_frontend(page, workflow)
    assert not [d for d in dialogs if d["name"] == "showMissingNodesError"], dialogs
    [planner] = [n for n in workflow["nodes"] if n["type"] == "RALUStagePlanner"]
    box = show_whole_graph(page)
    shown = wait_for_chart(page, planner["id"], name=planner["widgets_values"][0])
    assert shown["preview"]["plan"]["name"] == planner["widgets_values"][0]
    assert shown["shown"] and all(count > 20 for count in shown["counts"][:3])
    page.wait_for_timeout(300)
    problems = frontend_log.since(mark)
    assert not problems, f"loading {workflow_path.name}:\n" + "\n".join(problems)

    full = screenshot_dir / f"ralu_workflow_{workflow_path.stem}_full.png"
    page.screenshot(path=str(full), clip=box)
    left, top, width, height = page.evaluate(NODE_BOX, planner["id"])
    page.set_viewport_size(VIEWPORT)
    shot = Image.open(full).convert("RGB")

    # The thumbnail: the part of the graph around the Planner, in the template card's 4:3.
    thumb_width = THUMBNAIL_SPAN * SHOT_SCALE
    thumb_height = thumb_width * 3 / 4
    x = min(max(0, left - box["x"] + width / 2 - thumb_width / 2), shot.width - thumb_width)
    y = min(max(0, top - box["y"] + height / 2 - thumb_height / 2), shot.height - thumb_height)
    thumbnail = shot.crop((int(x), int(y), int(x + thumb_width), int(y + thumb_height)))
    thumbnail = thumbnail.resize((THUMBNAIL_WIDTH, THUMBNAIL_WIDTH * 3 // 4), Image.LANCZOS)
    thumb_path = screenshot_dir / f"{workflow_path.stem}.jpg"
    thumbnail.save(thumb_path, quality=85, optimize=True)
    keep(thumb_path, workflow_path.with_suffix(".jpg"))

    shot.thumbnail((README_WIDTH, README_WIDTH))
    path = screenshot_dir / f"ralu_workflow_{workflow_path.stem}.png"
    shot.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(path, optimize=True)  # < 100 KB
    targets = (
        [README_IMAGES / f"workflow_{workflow_path.stem}.png"]
        if workflow_path.stem == README_WORKFLOW
        else []
    )
    keep(path, *targets)


def test_queueing_a_workflow_whose_model_files_are_missing_gets_comfyuis_error(
    page, comfy_host, frontend_log
):
    """The test server has none of the stock FLUX files. With the Planner an output node, ComfyUI would
    run the Planner alone and report success; now the whole prompt is refused and nothing runs."""
    path = REPO_ROOT / "workflows" / f"{README_WORKFLOW}.json"
    load_in_frontend(page, json.loads(path.read_text()))
    mark = frontend_log.mark()
    page.evaluate(WATCH_EXECUTION)
    page.evaluate(QUEUE_FROM_UI)
    page.wait_for_function(ERROR_REPORTED, arg=None, timeout=CHART_TIMEOUT_MS)
    if page.evaluate(OPEN_ERROR_DETAILS):
        # Frontend 1.49: the server's node errors, one per refused input, in the right side panel.
        details = page.evaluate(ERROR_DETAILS)
        assert any("flux1-dev.safetensors" in d and "unet_name" in d for d in details), details
    else:
        text = page.evaluate("() => document.querySelector('.p-dialog').innerText")
        assert "Prompt outputs failed validation" in text and "flux1-dev.safetensors" in text, text
    page.wait_for_timeout(2000)
    assert page.evaluate("() => window.__raluRun.events") == []  # nothing started, nothing succeeded
    assert comfy_host.get_json("/queue") == {"queue_running": [], "queue_pending": []}
    # The frontend reports the refused prompt (its 400, its own console.error); nothing from our code.
    problems = frontend_log.since(mark)
    assert any("POST" in p and "/api/prompt: HTTP 400" in p for p in problems), problems
    assert not [p for p in problems if f"/extensions/{PACK_NAME}/" in p], problems
    page.keyboard.press("Escape")


# ------------------------------------------------------------------------------------ templates
def test_the_template_browser_shows_the_workflows_with_their_thumbnails(page, frontend_log, screenshot_dir):
    mark = frontend_log.mark()
    requested = len(frontend_log.requested)
    page.evaluate(OPEN_TEMPLATES)
    page.get_by_text(PACK_NAME, exact=True).first.click(timeout=CHART_TIMEOUT_MS)
    names = sorted(p.stem for p in WORKFLOWS)
    page.wait_for_function(TEMPLATE_CARDS_READY, arg=names, timeout=CHART_TIMEOUT_MS)
    # The frontend fetched each thumbnail from the pack's template folder (and shows it as a blob).
    thumbnails = {url.rsplit("/", 1)[1] for url in frontend_log.requested[requested:]
                  if f"/api/workflow_templates/{PACK_NAME}/" in url}  # fmt: skip
    assert thumbnails == {f"{name}.jpg" for name in names}
    path = screenshot_dir / "ralu_template_browser.png"
    page.screenshot(path=str(path))
    keep(path)
    page.keyboard.press("Escape")
    # (The stock templates' previews that the category switch cut short are the frontend's own.)
    ours = [p for p in frontend_log.since(mark) if "ralu" in p.lower()]
    assert not ours, "\n".join(ours)


# ------------------------------------------------------------------------------------ node help
@pytest.mark.parametrize("node_type", list(OUR_NODES))
def test_the_node_help_page_describes_every_input(page, frontend_log, object_info, node_type, screenshot_dir):
    """The page the frontend's node help panel fetches for a custom node (docs/<node>/<locale>.md under
    the pack's web folder) names every input and output, and the panel shows it with its pictures."""
    node_def = object_info[node_type]
    assert node_def["python_module"] == f"custom_nodes.{PACK_NAME}"
    url = f"/extensions/{PACK_NAME}/docs/{node_type}/en.md"
    help_page = page.evaluate(FETCH_TEXT, url)
    assert help_page["status"] == 200, url
    text = help_page["text"]
    assert text.startswith(f"# {OUR_NODES[node_type]}\n")
    in_bold = {name for span in re.findall(r"\*\*([^*]+)\*\*", text) for name in re.split(r",\s*", span)}
    inputs = {**node_def["input"]["required"], **node_def["input"].get("optional", {})}
    assert set(inputs) <= in_bold, set(inputs) - in_bold
    assert set(node_def["output_name"]) <= in_bold
    pictures = [part.split(")", 1)[0] for part in text.split("](")[1:]]
    assert pictures, "no picture"
    for picture in pictures:
        # The panel resolves a relative picture against the docs folder.
        fetched = page.evaluate(FETCH_IMAGE, f"/extensions/{PACK_NAME}/docs/{picture}")
        assert fetched["status"] == 200 and fetched["type"] == "image/png", picture
        assert fetched["bytes"] < MAX_PICTURE_BYTES and min(fetched["size"]) >= 100, fetched

    mark = frontend_log.mark()
    node_id = page.evaluate(ADD_NODE_ALONE, node_type)
    assert page.evaluate(OPEN_HELP, node_id), "no help button in the selection toolbox"
    first_sentence = text.split("\n\n")[1].split(". ")[0].replace("\n", " ").replace("**", "")
    page.wait_for_function(HELP_SHOWN, arg={"text": first_sentence, "pictures": pictures},
                           timeout=CHART_TIMEOUT_MS)  # fmt: skip
    path = screenshot_dir / f"ralu_help_{node_type}.png"
    page.screenshot(path=str(path))
    keep(path)
    page.evaluate(OPEN_HELP, node_id)  # the same button closes it
    # Frontend 1.49 shows the help in its right side panel, and opening that panel stores its state
    # (POST /api/settings/Comfy.RightSidePanel.IsOpen), a request that Chromium reports aborted while the
    # panel loads; that one request of the frontend's own is let pass, every other problem counts.
    problems = [p for p in frontend_log.since(mark) if not PANEL_STATE_ABORTED.search(p)]
    assert not problems, "\n".join(problems)
