// The lineage graph (GET /lineage?id=RUN&depth=N): ancestors and descendants laid out by dagre,
// drawn as SVG; nodes coloured by status, edges labelled with artifact names; click a node to
// open its run; wheel zooms, drag pans.
"use strict";

(async () => {
  const { el, svg } = UI;
  const main = document.getElementById("main");
  const params = UI.query();
  const runId = params.get("id") || "";
  const depth = params.get("depth") || "3";
  UI.header();
  document.title = "Lineage of " + runId + " · torchx tracker";

  const depthSelect = el("select", { id: "depth" },
    ["1", "2", "3", "5", "10", "all"].map((d) => el("option", { value: d, selected: d === depth, text: d })));
  depthSelect.addEventListener("change", () => {
    window.location.href = "/lineage?id=" + encodeURIComponent(runId) + "&depth=" + depthSelect.value;
  });
  const legend = el("span", { class: "legend" },
    ["RUNNING", "SUCCEEDED", "FAILED", "KILLED", null].map((s) => UI.statusBadge(s)));
  const canvas = el("div", { class: "graph", id: "graph" });
  UI.fill(main, 
    el("div", { class: "title" }, el("h1", {}, "Lineage of ", UI.runLink(runId))),
    el("div", { class: "controls" }, el("label", {}, "Depth ", depthSelect), legend),
    canvas,
  );

  let graph;
  try {
    const apiDepth = depth === "all" ? "" : "&depth=" + encodeURIComponent(depth);
    graph = await UI.getJSON("/api/lineage?id=" + encodeURIComponent(runId) + apiDepth);
  } catch (e) {
    UI.fail(main, e);
    return;
  }
  const problems = UI.problems(graph.errors, []);
  if (problems) main.insertBefore(problems, canvas);
  if (!graph.exists) {
    UI.fill(canvas, el("div", { class: "problems missing", text: "This run is not in the store." }));
    document.body.setAttribute("data-loaded", "true");
    return;
  }

  const CHAR = 7.2, MAX_CHARS = 44;
  const clip = (text) => (text.length > MAX_CHARS ? text.slice(0, MAX_CHARS - 1) + "…" : text);
  const g = new dagre.graphlib.Graph({ multigraph: true });
  g.setGraph({ rankdir: "LR", nodesep: 24, ranksep: 90, edgesep: 16, marginx: 16, marginy: 16 });
  g.setDefaultEdgeLabel(() => ({}));
  const keyOf = new Map();
  graph.nodes.forEach((n, i) => {
    const key = "n" + i;
    keyOf.set(n.run_id, key);
    const label = clip(n.run_id);
    g.setNode(key, { node: n, label, width: Math.max(120, label.length * CHAR + 24), height: 46 });
  });
  graph.edges.forEach((e, i) => {
    const label = e.artifact_name ? clip(e.artifact_name) : "";
    g.setEdge(keyOf.get(e.parent), keyOf.get(e.child),
      { edge: e, label, width: label.length * 6.5, height: label ? 14 : 0, labelpos: "c" }, "e" + i);
  });
  dagre.layout(g);
  const size = g.graph();
  const view = { x: 0, y: 0, w: Math.max(size.width, 200), h: Math.max(size.height, 80) };
  const root = svg("svg", {
    class: "lineage", role: "img", "aria-label": "lineage graph",
    viewBox: `0 0 ${view.w} ${view.h}`, width: "100%", height: Math.min(Math.max(view.h, 240), 640),
  });
  root.append(svg("defs", {}, svg("marker", {
    id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto",
  }, svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" }))));
  const layer = svg("g", {});
  root.append(layer);
  for (const e of g.edges()) {
    const data = g.edge(e);
    const d = data.points.map((p, i) => (i ? "L" : "M") + p.x.toFixed(1) + "," + p.y.toFixed(1)).join(" ");
    const group = svg("g", { class: "edge" },
      svg("path", { d, "marker-end": "url(#arrow)" }),
      svg("title", { text: `${data.edge.parent} → ${data.edge.child}` + (data.edge.artifact_name ? ` [${data.edge.artifact_name}]` : "") }));
    if (data.label) {
      group.append(svg("text", { x: data.x, y: data.y + 4, class: "edge-label", "text-anchor": "middle", text: data.label }));
    }
    layer.append(group);
  }
  for (const key of g.nodes()) {
    const { node, label, x, y, width, height } = g.node(key);
    const classes = ["node", "status-" + (node.status || "none").toLowerCase()];
    if (node.run_id === runId) classes.push("current");
    if (!node.in_store) classes.push("external");
    const group = svg("g", {
      class: classes.join(" "), transform: `translate(${x - width / 2},${y - height / 2})`,
      "data-run-id": node.run_id, tabindex: node.in_store ? 0 : -1, role: node.in_store ? "link" : null,
    },
    svg("title", { text: node.run_id + (node.status ? " · " + node.status : "") + (node.problem ? " · " + node.problem : "") }),
    svg("rect", { width, height, rx: 6, ry: 6 }),
    svg("text", { x: 12, y: 19, class: "node-id", text: label }),
    svg("text", { x: 12, y: 36, class: "node-status", text: node.in_store ? (node.status || "no status") + (node.problem ? " ⚠" : "") : "not a run of this store" }));
    if (node.in_store) {
      const open = () => { window.location.href = UI.runHref(node.run_id); };
      group.addEventListener("click", open);
      group.addEventListener("keydown", (ev) => { if (ev.key === "Enter") open(); });
    }
    layer.append(group);
  }
  // Wheel zooms around the pointer, dragging pans: the viewBox moves, nothing is re-laid out.
  const setView = () => root.setAttribute("viewBox", `${view.x} ${view.y} ${view.w} ${view.h}`);
  root.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const box = root.getBoundingClientRect();
    const fx = (ev.clientX - box.left) / box.width, fy = (ev.clientY - box.top) / box.height;
    const k = ev.deltaY > 0 ? 1.15 : 1 / 1.15;
    view.x += view.w * fx * (1 - k);
    view.y += view.h * fy * (1 - k);
    view.w *= k;
    view.h *= k;
    setView();
  }, { passive: false });
  let drag = null;
  root.addEventListener("pointerdown", (ev) => {
    if (ev.target.closest && ev.target.closest(".node")) return;
    drag = { x: ev.clientX, y: ev.clientY };
  });
  window.addEventListener("pointerup", () => { drag = null; });
  root.addEventListener("pointermove", (ev) => {
    if (!drag) return;
    const box = root.getBoundingClientRect();
    view.x -= (ev.clientX - drag.x) * view.w / box.width;
    view.y -= (ev.clientY - drag.y) * view.h / box.height;
    drag = { x: ev.clientX, y: ev.clientY };
    setView();
  });
  UI.fill(canvas, root,
    el("p", { class: "hint", text: `${graph.nodes.length} runs, ${graph.edges.length} links · click a run to open it · wheel to zoom, drag to pan` }));
  canvas.setAttribute("data-nodes", graph.nodes.length);
  canvas.setAttribute("data-edges", graph.edges.length);
  document.body.setAttribute("data-loaded", "true");
})();
