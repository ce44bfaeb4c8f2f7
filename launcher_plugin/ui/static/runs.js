// The runs table (GET /): sorted, filtered and paged by the server (/api/runs).
"use strict";

(() => {
  const { el } = UI;
  const COLUMNS = [
    ["run_id", "Run"], ["status", "Status"], ["start_time", "Started"], ["duration", "Duration"],
    ["scheduler", "Scheduler"], ["component", "Component"], ["user", "User"], [null, "Parents"],
  ];
  const params = UI.query();
  const state = {
    sort: params.get("sort") || "start_time",
    order: params.get("order") || "desc",
    q: params.get("q") || "",
    status: new Set(params.getAll("status")),
    offset: Number(params.get("offset") || 0),
    limit: Number(params.get("limit") || 50),
  };
  const selected = new Set();
  const main = document.getElementById("main");
  let statuses = ["RUNNING", "SUCCEEDED", "FAILED", "KILLED", "NONE"];
  let timer = null;

  function apiUrl() {
    const p = new URLSearchParams();
    p.set("sort", state.sort);
    p.set("order", state.order);
    p.set("offset", state.offset);
    p.set("limit", state.limit);
    if (state.q) p.set("q", state.q);
    for (const s of state.status) p.append("status", s);
    history.replaceState(null, "", "/?" + p.toString());
    return "/api/runs?" + p.toString();
  }

  const search = el("input", {
    type: "search", id: "filter-text", placeholder: "Filter: run id, component, user…", value: state.q,
  });
  search.addEventListener("input", () => {
    state.q = search.value;
    state.offset = 0;
    clearTimeout(timer);
    timer = setTimeout(load, 200);
  });
  const statusBoxes = el("span", { class: "status-filter" });
  const compareButton = el("button", { id: "compare", type: "button", disabled: true, text: "Compare selected" });
  compareButton.addEventListener("click", () => {
    window.location.href = UI.compareHref([...selected]);
  });
  const progress = el("span", { id: "progress", class: "progress" });
  const table = el("table", { class: "runs", id: "runs" });
  const pager = el("div", { class: "pager" });
  UI.fill(main, 
    el("h1", { text: "Runs" }),
    el("div", { class: "controls" }, search, statusBoxes, compareButton, progress),
    table,
    pager,
  );

  function renderStatusFilter() {
    statusBoxes.replaceChildren(...statuses.map((s) => {
      const box = el("input", { type: "checkbox", value: s, checked: state.status.has(s), "data-status": s });
      box.addEventListener("change", () => {
        if (box.checked) state.status.add(s); else state.status.delete(s);
        state.offset = 0;
        load();
      });
      return el("label", { class: "status-choice" }, box, " ", UI.statusBadge(s === "NONE" ? null : s),
        s === "NONE" ? " none" : "");
    }));
  }

  function updateCompare() {
    compareButton.disabled = selected.size < 1;
    compareButton.textContent = `Compare selected (${selected.size})`;
  }

  function headerRow() {
    return el("tr", {}, el("th", { class: "pick" }), COLUMNS.map(([key, title]) => {
      if (!key) return el("th", { text: title });
      const arrow = state.sort === key ? (state.order === "desc" ? " ▼" : " ▲") : "";
      const button = el("button", { type: "button", class: "sort", "data-sort": key, text: title + arrow });
      button.addEventListener("click", () => {
        if (state.sort === key) state.order = state.order === "desc" ? "asc" : "desc";
        else { state.sort = key; state.order = key === "start_time" || key === "duration" ? "desc" : "asc"; }
        state.offset = 0;
        load();
      });
      return el("th", {}, button);
    }));
  }

  function row(run) {
    const pick = el("input", { type: "checkbox", class: "pick", checked: selected.has(run.run_id), "aria-label": "select for compare" });
    pick.addEventListener("change", () => {
      if (pick.checked) selected.add(run.run_id); else selected.delete(run.run_id);
      updateCompare();
    });
    const problems = run.problems.length
      ? el("span", { class: "damaged", title: run.problems.join("\n"), text: " ⚠ damaged" }) : null;
    return el("tr", { class: run.problems.length ? "has-problems" : "", "data-run-id": run.run_id },
      el("td", {}, pick),
      el("td", {}, UI.runLink(run.run_id), problems),
      el("td", {}, UI.statusBadge(run.status)),
      el("td", { text: UI.fmtTime(run.start_time) }),
      el("td", { class: "num", text: UI.fmtDuration(run.duration) }),
      el("td", { text: run.scheduler || "" }),
      el("td", { text: run.component || "" }),
      el("td", { text: run.user || "" }),
      el("td", { class: "parents" }, run.parents.map((p) => el("div", {}, UI.runLink(p)))),
    );
  }

  let again = null;
  async function load() {
    clearTimeout(again);
    let page;
    try {
      page = await UI.getJSON(apiUrl());
    } catch (e) {
      UI.fail(main, e);
      return;
    }
    table.replaceChildren(el("thead", {}, headerRow()), el("tbody", {}, page.rows.map(row)));
    if (!page.rows.length) table.append(el("caption", { text: "No runs match." }));
    const index = page.index;
    progress.textContent = index.ready
      ? `${index.runs.toLocaleString()} runs`
      : `reading runs: ${index.read.toLocaleString()} of ${index.runs.toLocaleString()} — sorting and filtering cover those read so far`;
    if (index.error) progress.textContent += ` · listing failed: ${index.error}`;
    const first = page.total ? page.offset + 1 : 0;
    const last = page.offset + page.rows.length;
    const prev = el("button", { type: "button", id: "prev", disabled: page.offset === 0, text: "‹ Previous" });
    const next = el("button", { type: "button", id: "next", disabled: last >= page.total, text: "Next ›" });
    prev.addEventListener("click", () => { state.offset = Math.max(0, state.offset - state.limit); load(); });
    next.addEventListener("click", () => { state.offset += state.limit; load(); });
    pager.replaceChildren(prev, el("span", { id: "range", text: ` ${first}–${last} of ${page.total.toLocaleString()} ` }), next);
    document.body.setAttribute("data-loaded", "true");
    if (!index.ready) again = setTimeout(load, 1500);
  }

  UI.header().then((store) => {
    if (store && store.statuses) statuses = store.statuses;
    renderStatusFilter();
  });
  renderStatusFilter();
  updateCompare();
  load();
})();
