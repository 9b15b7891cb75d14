// Shows the text a RALU node returns (the plan summary, the per-stage token counts) on the node
// itself: ComfyUI's frontend renders images for any node but text only for its own preview nodes.
import { app } from "../../scripts/app.js";

// The Stage Planner shows a chart instead (ralu_planner.js).
const NODES_WITH_SUMMARY = new Set(["RALUKSampler"]);
const WIDGET_NAME = "ralu_summary";
const FALLBACK_FONT = "10px monospace"; // ComfyUI's .comfy-multiline-input, while not yet in the page
const TEXTAREA_PADDING = 4; // 2 px each side
const SPARE_PIXELS = 6; // rounding, and no scroll bar for the last row

let measureContext = null;

// Rows a line takes in a `white-space: pre-wrap` textarea `width` pixels wide: breaks after spaces,
// and inside a word that is longer than a row.
function wrappedRows(ctx, line, width) {
  let rows = 1;
  let used = 0;
  for (const word of line.split(/(?<= )/)) {
    if (used > 0 && used + ctx.measureText(word.trimEnd()).width > width) {
      rows += 1;
      used = 0;
    }
    used += ctx.measureText(word).width;
    while (used > width) {
      rows += 1;
      used -= width;
    }
  }
  return rows;
}

// The height that shows the whole summary without scrolling at the node's current width, so the
// node grows to fit it instead of hiding most of it behind a scroll bar.
function summaryHeight(node, widget) {
  const text = String(widget.value ?? "");
  const el = widget.element;
  const style = el?.isConnected ? getComputedStyle(el) : null;
  const font = style?.font || FALLBACK_FONT;
  const margin = widget.margin ?? 10; // the frontend insets the textarea by this on every side
  const width = node.size[0] - 2 * margin - TEXTAREA_PADDING;
  const key = `${font}|${width}|${text}`;
  if (widget.raluHeightKey === key) return widget.raluHeight;
  measureContext ??= document.createElement("canvas").getContext("2d");
  measureContext.font = font;
  const metrics = measureContext.measureText("Mg");
  const lineHeight =
    parseFloat(style?.lineHeight) ||
    metrics.fontBoundingBoxAscent + metrics.fontBoundingBoxDescent ||
    1.2 * (parseFloat(font) || 10);
  const rows = text.split("\n").reduce((sum, line) => sum + wrappedRows(measureContext, line, width), 0);
  widget.raluHeightKey = key;
  widget.raluHeight = Math.ceil(rows * lineHeight) + TEXTAREA_PADDING + SPARE_PIXELS + 2 * margin;
  return widget.raluHeight;
}

function summaryWidget(node) {
  const existing = node.widgets?.find((w) => w.name === WIDGET_NAME);
  if (existing) return existing;
  // addDOMWidget is the frontend's extension API for HTML widgets (its own text boxes are built on it).
  const textarea = document.createElement("textarea");
  textarea.className = "comfy-multiline-input";
  textarea.readOnly = true;
  textarea.style.opacity = 0.85;
  const widget = node.addDOMWidget(WIDGET_NAME, "customtext", textarea, {
    getValue: () => textarea.value,
    setValue: (value) => {
      textarea.value = value;
    },
    getMinHeight: () => summaryHeight(node, widget),
    // Output only: not sent with the prompt ...
    serialize: false,
  });
  // ... nor saved in the workflow.
  widget.serialize = false;
  return widget;
}

app.registerExtension({
  name: "ComfyUI-RALU.summary",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!NODES_WITH_SUMMARY.has(nodeData.name)) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const text = message?.text;
      if (!text?.length) return;
      summaryWidget(this).value = Array.isArray(text) ? text.join("\n") : String(text);
      this.setSize([this.size[0], Math.max(this.size[1], this.computeSize()[1])]);
      app.graph.setDirtyCanvas(true, false);
    };
  },
});
