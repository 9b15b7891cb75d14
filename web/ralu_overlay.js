// RALU KSampler's result preview with the early-upsampled cells tinted, and a toggle that shows the
// plain preview instead. The node returns both pictures: ui "images" (tinted), which the frontend
// shows by itself, and "ralu_plain". The frontend sets node.imgs only when the node's outputs change,
// so the picture swapped in before each draw stays until the next run.
import { app } from "../../scripts/app.js";

const TOGGLE_NAME = "early regions";

function fileOf(img) {
  return new URL(img.src, location.href).searchParams.get("filename");
}

function load(refs) {
  return refs.map((ref) => {
    const img = new Image();
    const query = new URLSearchParams({ filename: ref.filename, subfolder: ref.subfolder ?? "", type: ref.type });
    img.src = app.api.apiURL(`/view?${query}`);
    return img;
  });
}

function showChosen(node) {
  const pictures = node.raluPictures;
  const shown = node.imgs?.[0];
  // Only over this node's own result: during the next run the frontend shows its live previews.
  if (!pictures || !shown || !pictures.files.has(fileOf(shown))) return;
  const wanted = pictures.toggle.value ? pictures.tinted : pictures.plain;
  if (shown === wanted[0] || !wanted.every((img) => img.complete && img.naturalWidth)) return;
  node.imgs = wanted;
}

function overlayToggle(node) {
  const existing = node.widgets?.find((w) => w.name === TOGGLE_NAME);
  if (existing) return existing;
  const toggle = node.addWidget(
    "toggle",
    TOGGLE_NAME,
    true,
    () => {
      showChosen(node);
      app.graph.setDirtyCanvas(true, false);
    },
    // A view setting: neither sent with the prompt ...
    { on: "shown", off: "hidden", serialize: false },
  );
  // ... nor saved in the workflow.
  toggle.serialize = false;
  const draw = node.onDrawBackground;
  node.onDrawBackground = function () {
    const result = draw?.apply(this, arguments);
    showChosen(this);
    return result;
  };
  return toggle;
}

app.registerExtension({
  name: "ComfyUI-RALU.overlay",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== "RALUKSampler") return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      if (!message?.images?.length || !message?.ralu_plain?.length) return;
      const tinted = load(message.images);
      const plain = load(message.ralu_plain);
      const files = new Set([...message.images, ...message.ralu_plain].map((ref) => ref.filename));
      this.raluPictures = { toggle: overlayToggle(this), tinted, plain, files };
      for (const img of [...tinted, ...plain]) img.onload = () => app.graph.setDirtyCanvas(true, false);
      app.graph.setDirtyCanvas(true, false);
    };
  },
});
