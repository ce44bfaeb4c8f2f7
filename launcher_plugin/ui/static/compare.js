// Compare (GET /compare?id=A&id=B...): the runs' metrics overlaid and their metadata side by side.
"use strict";

(async () => {
  const { el } = UI;
  const main = document.getElementById("main");
  const ids = UI.query().getAll("id");
  UI.header();
  if (!ids.length) {
    UI.fill(main, el("p", { text: "Pick runs in the runs table, then press Compare selected." }));
    return;
  }
  let data;
  try {
    data = await UI.getJSON(UI.compareHref(ids).replace("/compare?", "/api/compare?"));
  } catch (e) {
    UI.fail(main, e);
    return;
  }
  const runs = el("ol", { class: "compared" }, data.runs.map((r) => el("li", {},
    UI.runLink(r.run_id, r.exists), " ",
    r.exists ? UI.statusBadge(r.status) : el("span", { class: "missing", text: "not in the store" }),
    UI.problems(r.errors, r.damaged))));

  const onlyDiff = el("input", { type: "checkbox", id: "only-diff", checked: true });
  const diffBox = el("div", { id: "metadata-diff" });
  function renderDiff() {
    const rows = data.metadata.filter((r) => !onlyDiff.checked || !r.same);
    if (!rows.length) {
      diffBox.replaceChildren(el("p", { class: "empty", text: data.metadata.length ? "No differences." : "No metadata." }));
      return;
    }
    diffBox.replaceChildren(el("table", { class: "diff" },
      el("thead", {}, el("tr", {}, el("th", { text: "Key" }), data.runs.map((r) => el("th", { text: r.run_id })))),
      el("tbody", {}, rows.map((r) => el("tr", { class: r.same ? "same" : "differs" },
        el("th", { text: r.key }),
        r.values.map((v, i) => el("td", { class: r.present[i] ? "" : "absent" },
          r.present[i] ? el("code", { text: UI.show(v) }) : "—")))))));
  }
  onlyDiff.addEventListener("change", renderDiff);
  renderDiff();

  const charts = el("div", { id: "charts", class: "charts" },
    data.metrics.length ? data.metrics.map((m) => UI.chart(m)) : el("p", { class: "empty", text: "No metrics logged." }));
  UI.fill(main, 
    el("h1", { text: `Compare ${data.runs.length} runs` }),
    UI.section("Runs", runs),
    UI.section("Metrics", charts),
    UI.section("Metadata", el("label", {}, onlyDiff, " only keys that differ"), diffBox),
  );
  document.body.setAttribute("data-loaded", "true");
})();
