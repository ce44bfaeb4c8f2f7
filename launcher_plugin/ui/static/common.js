// Shared helpers of the torchx tracker pages. Every value from the store reaches the DOM as
// text (textContent, createTextNode, setAttribute): nothing is ever parsed as HTML.
"use strict";

const UI = (() => {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const PALETTE = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
    "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22",
  ];

  function apply(node, props) {
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "text") node.textContent = String(value);
      else if (key === "class") node.setAttribute("class", value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    return node;
  }

  function add(node, children) {
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  /** An element: el("a", {href, class, text, onclick}, ...children). */
  function el(tag, props, ...children) {
    return add(apply(document.createElement(tag), props), children);
  }

  /** Replace node's children, skipping null/undefined/false (parts with nothing to show). */
  function fill(node, ...children) {
    node.replaceChildren();
    return add(node, children);
  }

  /** An SVG element. */
  function svg(tag, props, ...children) {
    return add(apply(document.createElementNS(SVG_NS, tag), props), children);
  }

  async function getJSON(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      throw new Error(`${url}: HTTP ${response.status}, not JSON`);
    }
    if (!response.ok && response.status !== 404) {
      throw new Error((body && body.error) || `HTTP ${response.status}`);
    }
    return body;
  }

  const query = () => new URLSearchParams(window.location.search);
  const runHref = (id) => "/run?id=" + encodeURIComponent(id);
  const lineageHref = (id, depth) =>
    "/lineage?id=" + encodeURIComponent(id) + (depth === undefined ? "" : "&depth=" + depth);
  const compareHref = (ids) =>
    "/compare?" + ids.map((id) => "id=" + encodeURIComponent(id)).join("&");

  function statusBadge(status) {
    const name = status || "NONE";
    return el("span", { class: "status status-" + name.toLowerCase(), text: status || "—" });
  }

  function fmtTime(seconds) {
    if (seconds === null || seconds === undefined) return "";
    const d = new Date(seconds * 1000);
    return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
  }

  function fmtDuration(seconds) {
    if (seconds === null || seconds === undefined) return "";
    if (seconds < 60) return seconds.toFixed(1) + " s";
    const m = Math.floor(seconds / 60), s = Math.round(seconds % 60);
    if (m < 60) return `${m} min ${s} s`;
    return `${Math.floor(m / 60)} h ${m % 60} min`;
  }

  /** A value as text: strings as they are, anything else as JSON. */
  const show = (value) => (typeof value === "string" ? value : JSON.stringify(value));

  function runLink(id, inStore) {
    if (inStore === false) return el("span", { class: "external", title: "not a run of this store", text: id });
    return el("a", { href: runHref(id), class: "run-link", text: id });
  }

  /** A box naming what could not be read: parts that raised and damaged records. */
  function problems(errors, damaged) {
    const items = [];
    for (const [part, why] of Object.entries(errors || {})) {
      items.push(el("li", {}, el("b", { text: part }), ": could not be read: ", why));
    }
    for (const d of damaged || []) {
      items.push(el("li", {}, el("b", { text: "damaged record" }), " ", el("code", { text: d.path }), ": ", d.why));
    }
    if (!items.length) return null;
    return el("div", { class: "problems", role: "alert" },
      el("strong", { text: `Damaged or unreadable (${items.length}): shown without it` }),
      el("ul", {}, items));
  }

  function keyValueTable(values, filter) {
    const keys = Object.keys(values || {}).sort();
    const rows = keys
      .filter((k) => !filter || (k + " " + show(values[k])).toLowerCase().includes(filter))
      .map((k) => el("tr", {}, el("th", { text: k }), el("td", {}, el("code", { text: show(values[k]) }))));
    if (!rows.length) return el("p", { class: "empty", text: keys.length ? "No match." : "None recorded." });
    return el("table", { class: "kv" }, el("tbody", {}, rows));
  }

  function section(title, ...children) {
    return el("section", { class: "card" }, el("h2", { text: title }), ...children);
  }

  function fail(main, error) {
    fill(main, el("div", { class: "problems", role: "alert" }, "Could not load: ", String(error)));
  }

  /**
   * One chart per metric: uPlot, step on x, one line per series (rank, restart or run).
   * metric = {name, series: [{label, x, y, points, shown, not_finite}]}
   */
  function chart(metric, exportHref) {
    const box = el("figure", {
      class: "chart",
      "data-metric": metric.name,
      "data-series-count": metric.series.length,
    });
    const total = metric.series.reduce((n, s) => n + s.points, 0);
    const shown = metric.series.reduce((n, s) => n + s.shown, 0);
    const skipped = metric.series.reduce((n, s) => n + s.not_finite, 0);
    const caption = el("figcaption", {},
      el("b", { text: metric.name }),
      ` · ${metric.series.length} series · ${total.toLocaleString()} points`,
      shown < total - skipped ? ` (${shown.toLocaleString()} drawn)` : "",
      skipped ? ` · ${skipped} not finite, not drawn` : "",
      exportHref ? [" · ", el("a", { href: exportHref(metric.name, "json"), text: "JSON" }),
        " ", el("a", { href: exportHref(metric.name, "csv"), text: "CSV" })] : "");
    box.append(caption);
    const plot = el("div", { class: "plot" });
    box.append(plot);
    requestAnimationFrame(() => {
      const data = uPlot.join(metric.series.map((s) => [s.x, s.y]));
      const width = Math.max(320, Math.min(plot.clientWidth || 560, 900));
      const opts = {
        width,
        height: 240,
        scales: { x: { time: false } },
        legend: { live: true },
        cursor: { drag: { x: true, y: false } },
        axes: [{ label: "step" }, {}],
        series: [{ label: "step" }].concat(metric.series.map((s, i) => ({
          label: s.label,
          stroke: PALETTE[i % PALETTE.length],
          width: 1.5,
          spanGaps: true,
          points: { show: false },
        }))),
      };
      new uPlot(opts, data, plot);
      box.setAttribute("data-drawn", "true");
    });
    return box;
  }

  async function header() {
    try {
      const store = await getJSON("/api/store");
      document.getElementById("store").textContent = store.store;
      return store;
    } catch (e) {
      return null;
    }
  }

  return {
    el, svg, fill, getJSON, query, runHref, lineageHref, compareHref, statusBadge, fmtTime,
    fmtDuration, show, runLink, problems, keyValueTable, section, fail, chart, header, PALETTE,
  };
})();
