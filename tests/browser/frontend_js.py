"""The JavaScript the browser tests run in the page (page.evaluate), one small function each."""

NODE_LIBRARY = """(types) => types.map((type) => {
  const cls = LiteGraph.registered_node_types[type];
  return cls ? {type, title: cls.title, display_name: cls.nodeData?.display_name,
                category: cls.nodeData?.category} : {type, missing: true};
})"""

ADD_NODE = """(type) => {
  const node = LiteGraph.createNode(type);
  app.graph.add(node);
  const defs = node.constructor.nodeData?.inputs ?? {};
  return {
    id: node.id,
    in_graph: app.graph.getNodeById(node.id) === node,
    widgets: node.widgets.map((w) => ({name: w.name, type: w.type, value: w.value})),
    tooltips: Object.fromEntries(Object.entries(defs).map(([name, spec]) => [name, spec.tooltip ?? null])),
  };
}"""

REMOVE_NODE = "(id) => app.graph.remove(app.graph.getNodeById(id))"

BUILD_EDGE_MASK_GRAPH = """({image, width, height}) => {
  app.graph.clear();
  const add = (type, pos) => {
    const node = LiteGraph.createNode(type);
    node.pos = pos;
    app.graph.add(node);
    return node;
  };
  const set = (node, name, value) => { node.widgets.find((w) => w.name === name).value = value; };
  const planner = add("RALUStagePlanner", [0, 0]);
  const load = add("LoadImage", [420, 0]);
  const edges = add("RALUEdgeMask", [780, 0]);
  const toImage = add("MaskToImage", [780, 440]);
  const save = add("SaveImage", [1100, 60]);
  set(load, "image", image);
  set(planner, "width", width);
  set(planner, "height", height);
  load.connect(0, edges, "image");
  planner.connect(0, edges, "plan");
  edges.connect(0, toImage, "mask");
  toImage.connect(0, save, "images");
  app.canvas.ds.scale = 1;
  app.canvas.ds.offset = [90, 150];
  app.graph.setDirtyCanvas(true, true);
  return {planner: planner.id, load: load.id, edges: edges.id, toImage: toImage.id, save: save.id};
}"""

WATCH_EXECUTION = """() => {
  const run = (window.__raluRun = {events: []});
  for (const type of ["execution_start", "executed", "execution_success", "execution_error",
                      "execution_interrupted"]) {
    app.api.addEventListener(type, (e) => {
      if (window.__raluRun !== run) return;
      run.events.push({type, node: e.detail?.node ?? e.detail?.node_id ?? null,
                       prompt_id: e.detail?.prompt_id ?? null,
                       error: e.detail?.exception_message ?? null});
    });
  }
}"""

QUEUE_FROM_UI = "async () => { await app.queuePrompt(0, 1); }"

RUN_TIMEOUT_MS = 120_000  # a run queued from the UI, the test FLUX included
SUMMARY_TIMEOUT_MS = 30_000  # a node's DOM widget appearing; a loaded 2-core machine has needed over 10 s
RUN_FINISHED = """() => window.__raluRun.events.some((e) =>
  ["execution_success", "execution_error", "execution_interrupted"].includes(e.type))"""

SUMMARY_SHOWN = """(id) => {
  const w = app.graph.getNodeById(id).widgets.find((w) => w.name === "ralu_summary");
  return !!(w && w.element?.isConnected && w.element.clientHeight > 0);
}"""

SUMMARY_STATE = """(id) => {
  const node = app.graph.getNodeById(id);
  const w = node.widgets.find((w) => w.name === "ralu_summary");
  if (!w) return null;
  const el = w.element;
  const r = el.getBoundingClientRect();
  return {value: w.value, read_only: el.readOnly, scroll_height: el.scrollHeight,
          client_height: el.clientHeight, rect: [r.left, r.top, r.width, r.height],
          is_last: node.widgets.at(-1) === w,
          widgets: node.widgets.filter((x) => x !== w).map((x) => [x.name, x.value])};
}"""

# Frontend 1.49 gives live nodes string ids ("5") where the serialized graph and older frontends have
# numbers (5): ids are compared as strings, and returned as strings where Python compares them.
SERIALIZED_NODE = "(id) => app.graph.serialize().nodes.find((n) => String(n.id) === String(id))"

PROMPT_OF_NODE = """async (id) => {
  const p = await app.graphToPrompt();
  return {output: p.output[String(id)],
          workflow_node: p.workflow.nodes.find((n) => String(n.id) === String(id))};
}"""

HOOK_LOAD_DIALOGS = """() => {
  window.__raluDialogs = [];
  if (app.__raluDialogsHooked) return;
  app.__raluDialogsHooked = true;
  for (const name of ["showMissingNodesError", "showMissingModelsError"]) {
    if (typeof app[name] !== "function") continue;  // frontend 1.49 has no showMissingModelsError
    const original = app[name].bind(app);
    app[name] = (...args) => {
      window.__raluDialogs.push({name, items: JSON.parse(JSON.stringify(args[0] ?? null))});
      return original(...args);
    };
  }
}"""

LOAD_GRAPH = "async (workflow) => { await app.loadGraphData(workflow); }"

NO_DIALOG_OPEN = "() => document.querySelectorAll('.p-dialog').length === 0"

# The widgets saved in widgets_values: all but those with serialize === false (options.serialize ===
# false, as on control_after_generate, only keeps a widget out of the prompt).
GRAPH_NODES = """() => app.graph.nodes.map((n) => ({
  id: String(n.id), type: n.type, mode: n.mode,
  widgets: (n.widgets ?? []).filter((w) => w.serialize !== false).map((w) => [w.name, w.value]),
}))"""

REGISTERED = "(types) => types.filter((t) => !LiteGraph.registered_node_types[t])"

SET_GROUP_MODE = """({prefix, mode}) => {
  const group = app.graph.groups.find((g) => g.title.startsWith(prefix));
  if (!group) return null;
  group.recomputeInsideNodes();
  const nodes = [...(group.nodes ?? group._nodes)];
  for (const node of nodes) node.mode = mode;
  app.graph.setDirtyCanvas(true, true);
  return nodes.map((n) => String(n.id));
}"""

PROMPT_OUTPUT = "async () => (await app.graphToPrompt()).output"

# How the page reports a refused or failed run. Older frontends open a dialog with the whole message.
# Frontend 1.49 shows a summary ("Invalid input", "View details") whose button opens the right side
# panel's error list, each item's message folded behind an info button (aria-controls
# "execution-item-detail-..."). ERROR_REPORTED: either is on the page; OPEN_ERROR_DETAILS: where there is
# a summary, open its list and unfold every item; whether there was one.
ERROR_REPORTED = """(text) => (text !== null && document.body.innerText.includes(text))
  || [...document.querySelectorAll(".p-dialog")].some((d) => d.innerText.includes("failed validation"))
  || [...document.querySelectorAll("button")].some((b) => b.innerText.trim() === "View details")"""

OPEN_ERROR_DETAILS = """async () => {
  const view = [...document.querySelectorAll("button")].find((b) => b.innerText.trim() === "View details");
  if (!view) return false;
  view.click();
  const folded = () => [...document.querySelectorAll(
    'button[aria-controls^="execution-item-detail-"][aria-expanded="false"]')];
  for (let i = 0; i < 30 && !folded().length; i++) await new Promise((r) => setTimeout(r, 100));
  for (const button of folded()) button.click();
  await new Promise((r) => setTimeout(r, 100));
  return true;
}"""

# The unfolded messages of the right side panel's error list (frontend 1.49).
ERROR_DETAILS = """() => [...document.querySelectorAll('[id^="execution-item-detail-"]')]
  .map((p) => p.innerText)"""
