// The RALU Stage Planner's chart: each stage's sigma schedule against the run's progress, coloured by
// resolution, each stage's share of the full-resolution tokens and the estimated speed-up. Drawn from
// the widget values, before anything runs and again after a reload: the numbers come from the
// server's GET /ralu/plan_preview (plan_preview.py), which computes them as the node does.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const NODE_TYPE = "RALUStagePlanner";
const WIDGET_NAME = "ralu_plan_chart";
const ROUTE = "/ralu/plan_preview";
const DEBOUNCE_MS = 250;
const CHART_HEIGHT = 224; // CSS pixels
const COLORS = ["#4f9fe8", "#e8a33d", "#6cc070"]; // low-res, mixed, full-res
const STAGE_LABELS = ["1/4 res", "edges at full", "full res"];
const TEXT = "#dddddd";
const MUTED = "#888888";
const ERROR = "#ff7b72";
const FONT = "11px sans-serif";

function chartWidget(node) {
  const existing = node.widgets?.find((w) => w.name === WIDGET_NAME);
  if (existing) return existing;
  const canvas = document.createElement("canvas");
  canvas.style.width = "100%";
  canvas.style.height = `${CHART_HEIGHT}px`;
  canvas.style.display = "block";
  // addDOMWidget is the frontend's extension API for HTML widgets.
  const widget = node.addDOMWidget(WIDGET_NAME, "ralu_chart", canvas, {
    getValue: () => undefined,
    setValue: () => {},
    getMinHeight: () => CHART_HEIGHT + 2 * (widget.margin ?? 10),
    getMaxHeight: () => CHART_HEIGHT + 2 * (widget.margin ?? 10),
    serialize: false, // not in the prompt ...
  });
  widget.serialize = false; // ... nor in the saved workflow
  // The frontend shows a DOM widget only while its node is on screen and large enough: draw when it
  // gets (or changes) its size, which no canvas frame may follow.
  new ResizeObserver(() => draw(node)).observe(canvas);
  return widget;
}

// The Planner's inputs as query parameters, from the widgets of the same names.
function planQuery(node) {
  const names = node.constructor.nodeData?.input_order?.required ?? [];
  const params = new URLSearchParams();
  for (const name of names) {
    const widget = node.widgets?.find((w) => w.name === name);
    if (widget) params.set(name, String(widget.value));
  }
  return params.toString();
}

async function refresh(node, query) {
  const seq = (node.raluChartSeq = (node.raluChartSeq ?? 0) + 1);
  let data;
  try {
    const response = await api.fetchApi(`${ROUTE}?${query}`);
    const body = await response.json();
    data = response.ok ? { preview: body, error: null } : { preview: null, error: body.error };
  } catch (error) {
    data = { preview: null, error: `The plan preview could not be computed: ${error.message ?? error}` };
  }
  if (seq !== node.raluChartSeq) return; // a newer request is under way
  node.raluPlanPreview = data.preview;
  node.raluPlanError = data.error;
  node.raluChartQuery = query;
  draw(node);
}

function wrap(ctx, text, width) {
  const lines = [];
  let line = "";
  for (const word of text.split(" ")) {
    const next = line ? `${line} ${word}` : word;
    if (line && ctx.measureText(next).width > width) {
      lines.push(line);
      line = word;
    } else {
      line = next;
    }
  }
  if (line) lines.push(line);
  return lines;
}

function draw(node) {
  const canvas = chartWidget(node).element;
  const width = canvas.clientWidth;
  const data = node.raluPlanError ?? node.raluPlanPreview;
  if (!width || !data) return; // drawn once both are there
  const scale = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * scale);
  canvas.height = Math.round(CHART_HEIGHT * scale);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(scale, 0, 0, scale, 0, 0);
  ctx.clearRect(0, 0, width, CHART_HEIGHT);
  ctx.font = FONT;
  ctx.textBaseline = "top";
  node.raluChartDraws = (node.raluChartDraws ?? 0) + 1;

  if (node.raluPlanError) {
    ctx.fillStyle = ERROR;
    wrap(ctx, node.raluPlanError, width - 8).forEach((line, i) => ctx.fillText(line, 4, 4 + 14 * i));
    canvas.title = node.raluPlanError;
    return;
  }
  canvas.title = data.summary;
  drawPlan(ctx, data, width);
}

function drawPlan(ctx, preview, width) {
  const { plan, sigmas, tokens } = preview;
  const total = plan.steps.reduce((a, b) => a + b, 0);
  ctx.fillStyle = TEXT;
  ctx.fillText(`${plan.name}: ${total} steps, estimated ${preview.speedup.toFixed(2)}x faster`, 4, 2);
  ctx.fillStyle = MUTED;
  ctx.fillText(
    `than ${preview.baseline_steps} steps of ${preview.model} at ${preview.width}x${preview.height}`,
    4,
    16,
  );

  // Sigma against progress (the run's steps, 0 to 1): each stage from its start sigma to its end.
  const left = 30;
  const right = width - 6;
  const top = 34;
  const plotHeight = 110;
  const x = (step) => left + ((right - left) * step) / total;
  const y = (sigma) => top + plotHeight * (1 - sigma);
  ctx.strokeStyle = MUTED;
  ctx.lineWidth = 1;
  ctx.strokeRect(left, top, right - left, plotHeight);
  ctx.fillStyle = MUTED;
  ctx.fillText("σ 1", 4, top - 2);
  ctx.fillText("0", 18, top + plotHeight - 10);
  let step = 0;
  let previousEnd = null;
  sigmas.forEach((stage, k) => {
    if (previousEnd !== null) {
      // The re-noise at the resolution change: sigma jumps back up.
      ctx.strokeStyle = MUTED;
      ctx.setLineDash([3, 3]);
      ctx.beginPath();
      ctx.moveTo(x(step), y(previousEnd));
      ctx.lineTo(x(step), y(stage[0]));
      ctx.stroke();
      ctx.setLineDash([]);
    }
    ctx.strokeStyle = COLORS[k];
    ctx.fillStyle = COLORS[k];
    ctx.lineWidth = 2;
    ctx.beginPath();
    stage.forEach((sigma, i) => {
      const px = x(step + i);
      if (i === 0) ctx.moveTo(px, y(sigma));
      else ctx.lineTo(px, y(sigma));
    });
    ctx.stroke();
    stage.forEach((sigma, i) => {
      ctx.beginPath();
      ctx.arc(x(step + i), y(sigma), 2, 0, 2 * Math.PI);
      ctx.fill();
    });
    step += plan.steps[k];
    previousEnd = stage.at(-1);
  });

  // Token share: one block per stage, as wide as its steps, as tall as its share of the full tokens,
  // so its area is the stage's share of the image-token work.
  const barTop = top + plotHeight + 8;
  const barHeight = 40;
  step = 0;
  plan.steps.forEach((n, k) => {
    const share = tokens[k] / tokens[2];
    ctx.fillStyle = COLORS[k];
    ctx.globalAlpha = 0.35;
    ctx.fillRect(x(step), barTop, x(step + n) - x(step) - 1, barHeight);
    ctx.globalAlpha = 1;
    ctx.fillRect(x(step), barTop + barHeight * (1 - share), x(step + n) - x(step) - 1, barHeight * share);
    ctx.fillStyle = TEXT;
    ctx.fillText(`${Math.round(share * 100)}%`, x(step) + 2, barTop + 2);
    step += n;
  });
  ctx.fillStyle = MUTED;
  ctx.fillText("tokens", 0, barTop + barHeight / 2 - 6);

  let legendX = left;
  const legendY = barTop + barHeight + 6;
  STAGE_LABELS.forEach((label, k) => {
    ctx.fillStyle = COLORS[k];
    ctx.fillRect(legendX, legendY + 2, 10, 8);
    ctx.fillStyle = TEXT;
    const text = `${label} (${plan.steps[k]})`;
    ctx.fillText(text, legendX + 14, legendY);
    legendX += 24 + ctx.measureText(text).width;
  });
}

app.registerExtension({
  name: "ComfyUI-RALU.planner",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== NODE_TYPE) return;
    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = onNodeCreated?.apply(this, arguments);
      chartWidget(this);
      this.setSize([Math.max(this.size[0], 340), this.computeSize()[1]]);
      return result;
    };
    // Every frame the node is drawn: fetch again (debounced) when a widget value changed, however it
    // changed (a widget's own control, a loaded workflow, a script).
    const onDrawForeground = nodeType.prototype.onDrawForeground;
    nodeType.prototype.onDrawForeground = function () {
      const result = onDrawForeground?.apply(this, arguments);
      const query = planQuery(this);
      if (query !== this.raluPendingQuery) {
        this.raluPendingQuery = query;
        clearTimeout(this.raluChartTimer);
        this.raluChartTimer = setTimeout(() => refresh(this, query), DEBOUNCE_MS);
      }
      return result;
    };
  },
});
