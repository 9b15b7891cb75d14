// Shows the text a RALU node returns (the plan summary, the per-stage token counts) on the node
// itself: ComfyUI's frontend renders images for any node but text only for its own preview nodes.
import { app } from "../../scripts/app.js";
import { ComfyWidgets } from "../../scripts/widgets.js";

const NODES_WITH_SUMMARY = new Set(["RALUStagePlanner", "RALUKSampler"]);
const WIDGET_NAME = "ralu_summary";

function summaryWidget(node) {
  const existing = node.widgets?.find((w) => w.name === WIDGET_NAME);
  if (existing) return existing;
  const widget = ComfyWidgets.STRING(node, WIDGET_NAME, ["STRING", { multiline: true }], app).widget;
  widget.inputEl.readOnly = true;
  widget.inputEl.style.opacity = 0.85;
  // Output only: neither saved in the workflow nor sent with the prompt.
  widget.serialize = false;
  widget.options.serialize = false;
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
