// A run (GET /run?id=RUN): launch record, status history, summary, metadata, artifacts, links,
// and one chart per metric.
"use strict";

(async () => {
  const { el } = UI;
  const main = document.getElementById("main");
  const runId = UI.query().get("id") || "";
  UI.header();
  document.title = runId + " · torchx tracker";
  let run;
  try {
    run = await UI.getJSON("/api/run?id=" + encodeURIComponent(runId));
  } catch (e) {
    UI.fail(main, e);
    return;
  }
  if (!run.exists) {
    UI.fill(main, 
      el("h1", { class: "run-id", text: runId }),
      el("div", { class: "problems missing", role: "alert", text: "This run is not in the store." }),
      UI.problems(run.errors, run.damaged),
    );
    document.body.setAttribute("data-loaded", "true");
    return;
  }
  const exportHref = (name, format) =>
    "/api/run/metrics/export?id=" + encodeURIComponent(runId) +
    (name ? "&name=" + encodeURIComponent(name) : "") + "&format=" + format;

  const filter = el("input", { type: "search", id: "metadata-filter", placeholder: "Search metadata…" });
  const metadataBox = el("div", { id: "metadata" }, UI.keyValueTable(run.metadata));
  filter.addEventListener("input", () => {
    metadataBox.replaceChildren(UI.keyValueTable(run.metadata, filter.value.toLowerCase()));
  });

  const history = run.status_history
    ? (run.status_history.length
      ? el("table", { class: "history" },
        el("thead", {}, el("tr", {}, el("th", { text: "Status" }), el("th", { text: "Time" }))),
        el("tbody", {}, run.status_history.map((h) => el("tr", {},
          el("td", {}, UI.statusBadge(h.status)),
          el("td", { text: UI.fmtTime(h.time) })))))
      : el("p", { class: "empty", text: "No status recorded." }))
    : el("p", { class: "empty", text: "This store records no status." });

  const artifacts = run.artifacts.length
    ? el("table", { class: "artifacts" },
      el("thead", {}, el("tr", {}, el("th", { text: "Name" }), el("th", { text: "Path" }), el("th", { text: "Metadata" }))),
      el("tbody", {}, run.artifacts.map((a) => el("tr", {},
        el("td", { class: "artifact-name", text: a.name }),
        el("td", {}, el("code", { text: a.path })),
        el("td", {}, el("code", { text: UI.show(a.metadata) }))))))
    : el("p", { class: "empty", text: "No artifacts." });

  const links = (items, none) => items.length
    ? el("ul", { class: "links" }, items.map((l) => el("li", {}, UI.runLink(l.run_id, l.in_store),
      l.artifact_name ? el("span", { class: "artifact", text: " [" + l.artifact_name + "]" }) : "")))
    : el("p", { class: "empty", text: none });

  const charts = el("div", { id: "charts", class: "charts" }, el("p", { class: "loading", text: "Loading metrics…" }));
  UI.fill(main, 
    el("div", { class: "title" },
      el("h1", { class: "run-id", text: run.run_id }), UI.statusBadge(run.status),
      el("a", { href: UI.lineageHref(run.run_id), id: "lineage-link", class: "button", text: "Lineage graph" }),
      el("a", { href: exportHref(null, "json"), class: "button", text: "All metrics (JSON)" })),
    UI.problems(run.errors, run.damaged),
    UI.section("Metrics", charts),
    el("div", { class: "grid" },
      UI.section("Launch record", UI.keyValueTable(run.launch)),
      UI.section("Status history", history),
      UI.section("Summary", UI.keyValueTable(run.summary)),
      UI.section("Sources", links(run.sources, "No sources.")),
      UI.section("Children", links(run.children, "No children."))),
    UI.section("Metadata", filter, metadataBox),
    UI.section("Artifacts", artifacts),
  );
  document.body.setAttribute("data-loaded", "true");

  try {
    const metrics = await UI.getJSON("/api/run/metrics?id=" + encodeURIComponent(runId));
    const notes = UI.problems(metrics.errors, []);
    UI.fill(charts, ...(notes ? [notes] : []),
      ...(metrics.metrics.length ? metrics.metrics.map((m) => UI.chart(m, exportHref))
        : [el("p", { class: "empty", text: "No metrics logged." })]));
  } catch (e) {
    UI.fill(charts, el("div", { class: "problems", text: "Metrics could not be loaded: " + e }));
  }
  charts.setAttribute("data-loaded", "true");
})();
