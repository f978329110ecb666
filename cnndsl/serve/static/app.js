// The cnndsl serve page: a CodeMirror editor whose text the server analyses on every change; the
// diagram, the summary table and the located errors follow. Ctrl-S saves; a change on disk reloads.
"use strict";
(() => {
  const config = JSON.parse(document.getElementById("config").textContent);
  const $ = (id) => document.getElementById(id);

  // ---- highlighting: the tokens of grammar/cnn.lark, layer names from the registry ----------------
  const KEYWORDS = new Set(["import", "block", "network", "let", "defaults", "for", "in", "if", "elif", "else",
    "output", "stage", "residual", "shortcut", "dense", "branch", "scale", "input", "and", "or", "not"]);
  const LAYERS = new Set(config.layers);
  const SPELLED = /^((dw)?conv|maxpool|avgpool)\d+x\d+$/;
  const cnn = CM.StreamLanguage.define({
    name: "cnn",
    token(stream) {
      if (stream.eatSpace()) return null;
      if (stream.match(/^#.*/)) return "comment";
      if (stream.match(/^"[^"\n]*"/)) return "string";
      if (stream.match(/^@[A-Za-z_]\w*/)) return "labelName";
      if (stream.match(/^\d+(x\d+)+/) || stream.match(/^\d+(\.\d+)?([eE][-+]?\d+)?/)) return "number";
      const word = stream.match(/^[A-Za-z_]\w*/);
      if (word) {
        if (KEYWORDS.has(word[0])) return "keyword";
        if (LAYERS.has(word[0]) || SPELLED.test(word[0])) return "typeName";
        if (stream.match(/^\s*:/, false)) return "labelName";
        return "variableName";
      }
      stream.next();
      return "operator";
    },
  });

  // ---- state ----------------------------------------------------------------------------------------
  let savedText = "";     // the text as on disk (what Ctrl-S last wrote or the last load read)
  let version = "";       // the disk version that text came from
  let networkId = null;   // the server's id of the last analysed network, for the learner's view
  let inFlight = false, pending = false, editStarted = null;
  let latest = 0, sentAt = 0;  // the newest analysis asked for and when; the answer to an older one is dropped
  const SUPERSEDE_MS = 1000;   // an analysis slower than this (ResNet-152 takes 0.1-0.5 s) is overtaken by the next edit
  let shownSvg = null;    // the diagram in the page, not redrawn when an edit leaves it the same

  const view = new CM.EditorView({
    parent: $("editor"),
    state: CM.EditorState.create({
      doc: "",
      extensions: [CM.basicSetup, cnn, CM.EditorView.lineWrapping, CM.EditorView.updateListener.of((update) => {
        if (update.docChanged) changed();
      })],
    }),
  });
  window.cnndsl = {view};

  function changed() {
    $("dirty").hidden = view.state.doc.toString() === savedText;
    if (editStarted === null) editStarted = performance.now();
    if (!inFlight) analyse();
    else if (performance.now() - sentAt >= SUPERSEDE_MS) analyse();  // the one in flight is slow: overtake it
    else pending = true;
  }

  // ---- analysis: one request at a time; a text typed meanwhile is sent when it returns, or after
  // SUPERSEDE_MS if it has not returned by then: the server then stops the old one and answers the new one
  async function analyse() {
    const mine = ++latest;
    sentAt = performance.now();
    inFlight = true;
    pending = false;
    const started = editStarted;
    editStarted = null;
    const text = view.state.doc.toString();
    const depth = $("depth").value;
    const body = {text, depth: depth === "" ? null : Number(depth), shapes: $("shapes").checked,
                  cost: $("cost").checked};
    const overtake = setTimeout(() => { if (pending && latest === mine) analyse(); }, SUPERSEDE_MS);
    let result;
    try {
      const response = await fetch("/api/analyse", {method: "POST", headers: {"Content-Type": "application/json"},
                                                    body: JSON.stringify(body)});
      result = await response.json();
      if (!response.ok) result = {ok: false, error: {message: result.error || response.statusText, here: false}};
    } catch (error) {
      result = {ok: false, error: {message: `the server does not answer (${error})`, here: false}};
    }
    clearTimeout(overtake);
    if (latest !== mine) return;  // superseded: the newer text's answer is shown
    inFlight = false;
    if (pending) {  // the text changed while this one was analysed: show only the newest
      if (editStarted === null || (started !== null && started < editStarted)) editStarted = started;
      analyse();
      return;
    }
    show(result);
    const ms = started === null ? null : performance.now() - started;
    $("status").textContent = result.ok ? `${quantity(result.params)} params · ${quantity(result.macs)} MACs · ` +
      `${Math.round(ms ?? result.ms)} ms` : "error";
    document.dispatchEvent(new CustomEvent("cnndsl:rendered", {detail: {ok: result.ok, ms, server: result.ms}}));
  }

  function show(result) {
    if (result.ok) {
      if (result.svg !== shownSvg) $("diagram").innerHTML = shownSvg = result.svg;
      $("diagram").classList.remove("stale");
      showTable(result.table);
      $("error").hidden = true;
      networkId = result.id;
      underline([]);
      if (!$("learner").hidden && explained) explain(explained);  // the working follows the edit
      return;
    }
    const error = result.error;
    $("diagram").classList.add("stale");
    $("error").hidden = false;
    $("error-text").textContent = error.rendered || error.message;
    underline(error.here ? [diagnostic(error)] : []);
  }

  let underlined = false;  // whether the editor shows an error: clearing none would cost the editor a redraw
  function underline(diagnostics) {
    if (!underlined && !diagnostics.length) return;
    view.dispatch(CM.setDiagnostics(view.state, diagnostics));
    underlined = diagnostics.length > 0;
  }

  // A ResNet-152 table has 900 rows: laid out whole it costs the browser a few hundred ms per edit. Split
  // into parts of PART rows, each laid out only when scrolled into view (`content-visibility: auto`), and
  // each made again only when its rows changed: an edit of one layer remakes its part and the totals.
  // (The server's table escapes every text, so `</tr>` ends a row and nothing else.)
  const PART = 40;
  let parts = [];  // [html, element] per part in the page: the head, the parts of the body, the footer
  function showTable(html) {
    const open = html.indexOf("<tbody>"), close = html.indexOf("</tbody>");
    const rows = html.slice(open + "<tbody>".length, close).split("</tr>").slice(0, -1);
    const pieces = [html.slice(html.indexOf("<caption>"), open)];
    for (let start = 0; start < rows.length; start += PART) {
      pieces.push(rows.slice(start, start + PART).join("</tr>") + "</tr>");
    }
    pieces.push(html.slice(close + "</tbody>".length, html.lastIndexOf("</table>")));
    parts = pieces.map((piece, index) => (parts[index] && parts[index][0] === piece) ? parts[index]
      : [piece, index === 0 || index === pieces.length - 1 ? part(piece) : bodyPart(piece)]);
    $("table").replaceChildren(...parts.map(([, element]) => element));
  }

  function part(inside) {
    const holder = document.createElement("template");
    holder.innerHTML = `<table class="cnndsl-summary">${inside}</table>`;
    const table = holder.content.firstElementChild;
    const group = document.createElement("colgroup");
    for (const width of ["40%", "", "", "", "", ""]) group.appendChild(document.createElement("col")).style.width = width;
    table.insertBefore(group, table.caption ? table.caption.nextSibling : table.firstChild);
    return table;
  }

  function bodyPart(rows) {
    const box = document.createElement("div");
    box.className = "part";
    box.appendChild(part(`<tbody>${rows}</tbody>`));
    box.style.containIntrinsicSize = `auto ${box.querySelectorAll("tr").length * 19}px`;
    return box;
  }

  function diagnostic(error) {
    const doc = view.state.doc;
    const line = doc.line(Math.min(Math.max(error.line, 1), doc.lines));
    const from = line.from + Math.min(Math.max(error.column - 1, 0), line.length);
    const word = /^[\w@.]+/.exec(doc.sliceString(from, line.to));
    const to = Math.min(from + (word ? word[0].length : 1), doc.length);
    return {from, to, severity: "error", message: error.message + (error.hint ? `\nhint: ${error.hint}` : "")};
  }

  // ---- the file: load, save with Ctrl-S, reload when it changes on disk ----------------------------
  async function load() {
    const response = await fetch("/api/file");
    const file = await response.json();
    if (!response.ok) { $("status").textContent = file.error; return; }
    savedText = file.text;
    version = file.version;
    $("ondisk").hidden = true;
    view.dispatch({changes: {from: 0, to: view.state.doc.length, insert: file.text}});
  }

  async function save() {
    const text = view.state.doc.toString();
    const response = await fetch("/api/file", {method: "PUT", headers: {"Content-Type": "application/json"},
                                               body: JSON.stringify({text})});
    const answer = await response.json();
    if (!response.ok) { $("status").textContent = answer.error; return; }
    savedText = text;
    version = answer.version;
    $("dirty").hidden = view.state.doc.toString() === savedText;
    $("ondisk").hidden = true;
    $("status").textContent = "saved";
    document.dispatchEvent(new CustomEvent("cnndsl:saved", {detail: {version}}));
  }

  async function watch() {
    try {
      const answer = await (await fetch("/api/version")).json();
      if (answer.version !== version && answer.version !== "") {  // gone from disk: keep the text, Ctrl-S restores it
        if ($("dirty").hidden) await load(); else $("ondisk").hidden = false;
      }
    } catch (error) { /* the server stopped; the page stays as it is */ }
  }

  window.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "s") {
      event.preventDefault();
      save();
    }
  }, true);
  $("reload").addEventListener("click", load);
  for (const id of ["depth", "shapes", "cost"]) $(id).addEventListener("change", () => changed());

  // ---- the learner's view: a click on a layer shows its figures worked out -------------------------
  let explained = null;  // the layer whose working is shown
  async function explain(name) {
    explained = name;
    const response = await fetch(`/api/layer?id=${networkId}&name=${encodeURIComponent(name)}`);
    $("learner").hidden = false;
    if (!response.ok) {
      $("learner-title").textContent = `${name}: a group — choose depth "all" and click a layer inside it`;
      $("learner-rows").replaceChildren();
      return;
    }
    const layer = await response.json();
    $("learner-title").textContent = `${layer.name}: ${layer.label}   (${layer.inputs.join(", ") || "—"} → ${layer.output})`;
    $("learner-rows").replaceChildren(...layer.rows.map(([what, working]) => {
      const row = document.createElement("tr");
      for (const text of [what, working]) row.appendChild(document.createElement("td")).textContent = text;
      return row;
    }));
  }

  function pick(element) {
    document.querySelectorAll(".picked").forEach((other) => other.classList.remove("picked"));
    element.classList.add("picked");
  }

  $("diagram").addEventListener("click", (event) => {
    const node = event.target.closest("g.node");
    if (!node) return;
    const link = node.querySelector("a");
    const name = link ? link.getAttributeNS("http://www.w3.org/1999/xlink", "title") : null;
    if (!name) return;
    pick(node);
    explain(name);
  });
  $("table").addEventListener("click", (event) => {
    const row = event.target.closest("tr[data-layer]");
    if (!row) return;
    pick(row);
    explain(row.dataset.layer);
  });
  $("learner-close").addEventListener("click", () => { $("learner").hidden = true; });

  function quantity(count) {
    for (const [factor, unit] of [[1e9, "G"], [1e6, "M"], [1e3, "K"]]) {
      if (count >= factor * 0.9995) return `${(count / factor).toPrecision(3)}${unit}`;
    }
    return String(count);
  }

  $("file").textContent = config.file;
  if (config.depth !== null) {
    if (![...$("depth").options].some((option) => option.value === String(config.depth))) {
      $("depth").add(new Option(String(config.depth)));
    }
    $("depth").value = String(config.depth);
  }
  load().then(() => setInterval(watch, 1000));
})();
