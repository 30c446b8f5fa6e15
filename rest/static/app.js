// The facesearch web console: plain ES module, no build step, no dependencies.
// It calls the REST API of the server that serves it (docs/api.md); the bearer token lives in
// sessionStorage and travels only in the Authorization header (never in a URL or a cookie).

const TOKEN_KEY = "facesearch.token";
const GALLERY_PAGE = 24;     // identities per gallery page
const FACES_PAGE = 60;       // faces per "load more" on an identity's page
const SOURCES = {            // Info.default_max_distance_source -> what the operator reads
  CUTOFF_SOURCE_CONFIGURED: ["env", "FACESEARCH_MAX_DISTANCE or --max-distance"],
  CUTOFF_SOURCE_CALIBRATED: ["calibrated", "the gallery's applied calibration"],
  CUTOFF_SOURCE_DEFAULT: ["default", "the built-in default"],
  CUTOFF_SOURCE_UNSPECIFIED: ["default", "the built-in default"],
};

// -- small DOM helpers ------------------------------------------------------------------------
const $ = (sel, root = document) => root.querySelector(sel);

/** h("div.card", {onclick}, child, ...): an element; strings become text nodes (never HTML). */
function h(spec, attrs = {}, ...children) {
  const [tag, ...classes] = spec.split(".");
  const el = document.createElement(tag || "div");
  if (classes.length) el.className = classes.join(" ");
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "style" && typeof v === "object") Object.assign(el.style, v);
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function toast(message, kind = "error") {
  const el = h("div.toast." + kind, {}, message);
  $("#toasts").append(el);
  setTimeout(() => el.remove(), kind === "error" ? 8000 : 4000);
}

function debounce(fn, ms = 250) {
  let timer;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

const fmt = (x, digits = 3) => (typeof x === "number" ? x.toFixed(digits) : "");
const pct = (x) => (typeof x === "number" ? (100 * x).toFixed(2) + "%" : "");

// -- the API ----------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.status = status;
    this.code = code;
  }
}

const token = () => sessionStorage.getItem(TOKEN_KEY) || "";

/** One REST call; JSON in and out (or a FormData body, or a Blob answer). Errors: ApiError. */
async function api(method, path, { json, form, query } = {}) {
  const headers = { Accept: "application/json" };
  if (token()) headers.Authorization = "Bearer " + token();
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) {
    body = form;
  }
  let url = path;
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== "" && v !== undefined && v !== null) q.set(k, v);
    if ([...q].length) url += "?" + q;
  }
  let res;
  try {
    res = await fetch(url, { method, headers, body, credentials: "omit", cache: "no-store" });
  } catch (e) {
    throw new ApiError(0, "UNAVAILABLE", "the server cannot be reached: " + e.message);
  }
  if (!res.ok) {
    let err = { code: "HTTP_" + res.status, message: res.statusText };
    try { err = await res.json(); } catch { /* not JSON: keep the status line */ }
    if (res.status === 401) askToken("The server wants a token: " + (err.message || "unauthenticated"));
    throw new ApiError(res.status, err.code, err.message);
  }
  const type = res.headers.get("content-type") || "";
  return type.includes("json") ? res.json() : res.blob();
}

const enc = encodeURIComponent;
const identityPath = (id) => "/v1/identities/" + enc(id);

// Face crops need the Authorization header, so they come through fetch as blobs, a few at a time,
// and are cached as object URLs (revoked when the cache is full).
const crops = new Map();          // image path -> Promise<object URL | null>
const CROP_CACHE = 600;
let cropSlots = 6;
const cropQueue = [];

const faceImagePath = (faceId) => `/v1/faces/${enc(faceId)}/image`;
const unknownImagePath = (faceId) => `/v1/unknown/faces/${enc(faceId)}/image`;

function imageAt(path) {
  if (crops.has(path)) return crops.get(path);
  const p = new Promise((resolve) => cropQueue.push([path, resolve]));
  crops.set(path, p);
  if (crops.size > CROP_CACHE) {
    const [oldest, url] = crops.entries().next().value;
    crops.delete(oldest);
    url.then((u) => u && URL.revokeObjectURL(u));
  }
  pumpCrops();
  return p;
}

function pumpCrops() {
  while (cropSlots > 0 && cropQueue.length) {
    const [path, resolve] = cropQueue.shift();
    cropSlots--;
    api("GET", path)
      .then((blob) => resolve(URL.createObjectURL(blob)))
      .catch(() => { crops.delete(path); resolve(null); })   // no crop stored: a placeholder
      .finally(() => { cropSlots++; pumpCrops(); });
  }
}

/** An <img> of a stored face crop (path: its image route), or the label's initials when there is none. */
function cropImage(faceId, label, path = faceId && faceImagePath(faceId)) {
  const box = h("div.thumb", {}, h("span.initials", {}, initials(label)));
  if (path) {
    imageAt(path).then((url) => {
      if (url) box.replaceChildren(h("img", { src: url, alt: label, loading: "lazy" }));
    });
  }
  return box;
}

function initials(name) {
  return (name || "?").split(/[\s_\-.]+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join("");
}

// -- dialogs ----------------------------------------------------------------------------------
/** Resolves true when the operator confirms. Every destructive action goes through here. */
function confirmAction(title, text, ok = "Delete") {
  const dialog = $("#confirm");
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  $("#confirm-ok").textContent = ok;
  dialog.returnValue = "cancel";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

function askToken(reason) {
  const dialog = $("#token");
  if (dialog.open) return;
  if (reason) $("#token-reason").textContent = reason;
  $("#token-input").value = token();
  dialog.showModal();
}

function setupToken() {
  const dialog = $("#token");
  $("#token-button").addEventListener("click", () => askToken());
  dialog.addEventListener("close", () => {
    if (dialog.returnValue === "save" && $("#token-input").value.trim()) {
      sessionStorage.setItem(TOKEN_KEY, $("#token-input").value.trim());
      crops.clear();
      route();
    } else if (dialog.returnValue === "clear") {
      sessionStorage.removeItem(TOKEN_KEY);
    }
    $("#token-input").value = "";
    showTokenState();
  });
}

function showTokenState() {
  const b = $("#token-button");
  b.textContent = token() ? "Token set" : "Token";
  b.classList.toggle("set", !!token());
}

function errorBox(e) {
  return h("div.error", { role: "alert" }, `${e.code || "ERROR"}: ${e.message}`);
}

/** A drop zone with a file picker; onFiles gets image Files. */
function dropZone(label, onFiles, multiple = true) {
  const input = h("input", { type: "file", accept: "image/*", multiple, hidden: true,
    onchange: () => { onFiles([...input.files]); input.value = ""; } });
  const zone = h("div.drop", {
    tabindex: "0", role: "button",
    onclick: () => input.click(),
    onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } },
    ondragover: (e) => { e.preventDefault(); zone.classList.add("over"); },
    ondragleave: () => zone.classList.remove("over"),
    ondrop: (e) => {
      e.preventDefault();
      zone.classList.remove("over");
      const files = [...(e.dataTransfer?.files || [])].filter((f) => f.type.startsWith("image/") || !f.type);
      if (files.length) onFiles(multiple ? files : files.slice(0, 1));
    },
  }, h("strong", {}, label), h("span.muted", {}, multiple ? "drop photos here, or click to choose" : "drop a photo here, or click to choose"), input);
  return zone;
}

// -- Gallery ----------------------------------------------------------------------------------
async function galleryView(view, params) {
  const prefix = params.get("q") || "";
  const pageSize = Math.min(200, Math.max(1, Number(params.get("page_size")) || GALLERY_PAGE));   // #/?page_size=N
  const state = { tokens: [""], page: 0 };
  const search = h("input", { type: "search", id: "gallery-search", placeholder: "Search by id or name prefix",
    value: prefix, "aria-label": "Search identities" });
  const summary = h("span.muted", { id: "gallery-summary" });
  const grid = h("div.grid", { id: "identities" });
  const prev = h("button.ghost", { type: "button", id: "prev", disabled: true }, "← Previous");
  const next = h("button.ghost", { type: "button", id: "next", disabled: true }, "Next →");
  const pageLabel = h("span.muted", { id: "page-label" });
  const pager = h("div.pager", { hidden: true }, prev, pageLabel, next);
  view.replaceChildren(
    h("div.toolbar", {}, h("h1", {}, "Gallery"), summary, h("span.grow"), search),
    grid,
    pager);

  api("GET", "/v1/info").then((i) => {
    summary.textContent = `${i.identity_count} identities · ${i.face_count} faces`;
  }).catch(() => {});

  async function load() {
    grid.replaceChildren(h("p.muted", {}, "Loading…"));
    try {
      const page = await api("GET", "/v1/identities", { query: {
        page_size: pageSize, page_token: state.tokens[state.page], prefix: search.value.trim() } });
      if (page.next_page_token) state.tokens[state.page + 1] = page.next_page_token;
      else state.tokens.length = state.page + 1;
      prev.disabled = state.page === 0;
      next.disabled = !page.next_page_token;
      pageLabel.textContent = `Page ${state.page + 1}`;
      pager.hidden = prev.disabled && next.disabled;     // one page: nothing to page through
      if (!page.identities.length) {
        grid.replaceChildren(h("div.empty", {},
          search.value.trim() ? `No identity starts with “${search.value.trim()}”.`
            : "The gallery is empty. ", search.value.trim() ? "" : h("a", { href: "#/enrol" }, "Enrol someone")));
        return;
      }
      grid.replaceChildren(...page.identities.map(identityCard));
    } catch (e) {
      grid.replaceChildren(errorBox(e));
    }
  }

  prev.addEventListener("click", () => { if (state.page > 0) { state.page--; load(); } });
  next.addEventListener("click", () => { if (state.tokens[state.page + 1]) { state.page++; load(); } });
  search.addEventListener("input", debounce(() => {
    state.tokens = [""];
    state.page = 0;
    const q = new URLSearchParams(params);
    if (search.value.trim()) q.set("q", search.value.trim()); else q.delete("q");
    history.replaceState(null, "", "#/" + ([...q].length ? "?" + q : ""));
    load();
  }));
  await load();
}

function identityCard(identity) {
  const name = identity.display_name || identity.identity_id;
  return h("a.card.identity", { href: "#/identity/" + enc(identity.identity_id), dataset: { id: identity.identity_id } },
    cropImage(identity.face_ids[0], name),
    h("div.meta", {},
      h("div.name", {}, name),
      h("div.muted.small", {}, identity.display_name ? identity.identity_id : "\u00a0"),
      h("div.muted.small", {}, `${identity.face_count} face${identity.face_count === 1 ? "" : "s"}`)));
}

// -- one identity -----------------------------------------------------------------------------
async function identityView(view, id) {
  let identity;
  try {
    identity = await api("GET", identityPath(id));
  } catch (e) {
    view.replaceChildren(h("a", { href: "#/" }, "← Gallery"), errorBox(e));
    return;
  }
  const title = h("h1", { id: "identity-title" }, identity.display_name || identity.identity_id);
  const count = h("span.muted", { id: "face-count" });
  const showCount = (n) => { count.textContent = `${n} face${n === 1 ? "" : "s"}`; };
  showCount(identity.face_count);

  // Name and metadata: PATCH with only the fields that change.
  const nameInput = h("input", { id: "display-name", value: identity.display_name, placeholder: "display name",
    "aria-label": "Display name" });
  const nameForm = h("form.row", { id: "rename-form", onsubmit: async (e) => {
    e.preventDefault();
    try {
      identity = await api("PATCH", identityPath(id), { json: { display_name: nameInput.value.trim() } });
      title.textContent = identity.display_name || identity.identity_id;
      toast("Renamed", "ok");
    } catch (err) { toast(err.message); }
  } }, nameInput, h("button.primary", { type: "submit" }, "Rename"));

  const metaRows = h("div", { id: "metadata-rows" });
  const addRow = (k = "", v = "") => {
    const row = h("div.row.meta-row", {},
      h("input.key", { value: k, placeholder: "key", "aria-label": "Metadata key" }),
      h("input.value", { value: v, placeholder: "value", "aria-label": "Metadata value" }),
      h("button.ghost.icon", { type: "button", title: "Remove this field", onclick: () => row.remove() }, "×"));
    metaRows.append(row);
  };
  Object.entries(identity.metadata || {}).forEach(([k, v]) => addRow(k, v));
  const metaForm = h("form", { id: "metadata-form", onsubmit: async (e) => {
    e.preventDefault();
    const metadata = {};
    for (const row of metaRows.children) {
      const k = $(".key", row).value.trim();
      if (k) metadata[k] = $(".value", row).value;
    }
    try {
      identity = await api("PATCH", identityPath(id), { json: { metadata } });
      toast("Metadata saved", "ok");
    } catch (err) { toast(err.message); }
  } }, metaRows, h("div.row", {},
    h("button.ghost", { type: "button", onclick: () => addRow() }, "+ Field"),
    h("button.primary", { type: "submit" }, "Save metadata")));

  // Faces: paged, selectable; delete or move the selected ones.
  const faces = h("div.grid.faces", { id: "faces" });
  const more = h("button.ghost", { type: "button", id: "more-faces", hidden: true }, "Load more");
  let faceToken = "";
  const selected = () => [...faces.querySelectorAll("input.pick:checked")].map((c) => c.value);
  async function loadFaces(reset) {
    if (reset) { faces.replaceChildren(); faceToken = ""; }
    try {
      const page = await api("GET", identityPath(id) + "/faces", { query: { page_size: FACES_PAGE, page_token: faceToken } });
      faces.append(...page.faces.map(faceCard));
      faceToken = page.next_page_token;
      more.hidden = !faceToken;
      if (!faces.children.length) faces.append(h("div.empty", {}, "No faces. ", h("a", { href: "#/enrol?id=" + enc(id) }, "Add photos")));
    } catch (err) { faces.replaceChildren(errorBox(err)); }
  }
  function faceCard(f) {
    const remove = async () => {
      if (!await confirmAction("Delete this face?", `Face ${f.face_id} leaves ${id}. This cannot be undone.`)) return;
      try {
        await api("DELETE", `/v1/faces/${enc(f.face_id)}`);
        card.remove();
        await refreshCount();
      } catch (err) { toast(err.message); }
    };
    const card = h("label.card.face", { dataset: { faceId: f.face_id } },
      cropImage(f.has_image ? f.face_id : null, identity.display_name || id),
      h("div.meta", {},
        h("div.row.tight", {}, h("input.pick", { type: "checkbox", value: f.face_id, "aria-label": "Select face " + f.face_id }),
          h("span.small", {}, "#" + f.face_id), h("span.grow"),
          h("button.ghost.icon.delete-face", { type: "button", title: "Delete this face",
            onclick: (e) => { e.preventDefault(); remove(); } }, "×")),
        h("div.muted.small", { title: f.source_path || f.source_sha256 || "" },
          (f.source_path || "").split("/").pop() || `enrolled ${(f.created_at || "").slice(0, 10)}`),
        h("div.muted.small", {}, `score ${fmt(f.detection_score, 2)}`)));
    return card;
  }
  async function refreshCount() {
    try { identity = await api("GET", identityPath(id)); showCount(identity.face_count); } catch { /* gone */ }
  }
  more.addEventListener("click", () => loadFaces(false));

  const target = identityPicker("move-target", "target identity id");
  const create = h("input", { type: "checkbox", id: "move-create" });
  const faceTools = h("div.row.wrap", {},
    h("button.ghost", { type: "button", onclick: () => faces.querySelectorAll("input.pick").forEach((c) => { c.checked = true; }) }, "Select all"),
    h("button.danger", { type: "button", id: "delete-faces", onclick: async () => {
      const ids = selected();
      if (!ids.length) return toast("Select faces first");
      if (!await confirmAction(`Delete ${ids.length} face${ids.length === 1 ? "" : "s"}?`,
        `They leave ${id} and the index. This cannot be undone.`)) return;
      for (const f of ids) {
        try { await api("DELETE", `/v1/faces/${enc(f)}`); } catch (err) { toast(err.message); }
      }
      await loadFaces(true);
      await refreshCount();
    } }, "Delete selected"),
    h("span.grow"),
    target.wrap,
    h("label.check", {}, create, "create if missing"),
    h("button.primary", { type: "button", id: "move-faces", onclick: async () => {
      const ids = selected();
      const to = target.input.value.trim();
      if (!ids.length || !to) return toast("Select faces and name the target identity");
      if (!await confirmAction(`Move ${ids.length} face${ids.length === 1 ? "" : "s"} to ${to}?`,
        `They stop matching as ${id} and match as ${to} from now on.`, "Move")) return;
      try {
        const r = await api("POST", "/v1/faces:move", { json: { face_ids: ids, target_identity_id: to, create_if_missing: create.checked } });
        toast(`Moved ${r.faces_moved} face${r.faces_moved === 1 ? "" : "s"} to ${to}`, "ok");
        await loadFaces(true);
        await refreshCount();
      } catch (err) { toast(err.message); }
    } }, "Move selected"));

  const source = identityPicker("merge-source", "identity id to merge in");
  const mergeForm = h("form.row.wrap", { id: "merge-form", onsubmit: async (e) => {
    e.preventDefault();
    const from = source.input.value.trim();
    if (!from) return;
    if (!await confirmAction(`Merge ${from} into ${id}?`,
      `Every face of ${from} moves to ${id}, and ${from} is deleted.`, "Merge")) return;
    try {
      const r = await api("POST", identityPath(id) + ":merge", { json: { source_ids: [from] } });
      toast(`Merged: ${r.faces_moved} face${r.faces_moved === 1 ? "" : "s"} moved`, "ok");
      source.input.value = "";
      await loadFaces(true);
      await refreshCount();
    } catch (err) { toast(err.message); }
  } }, h("span", {}, "Merge into this identity:"), source.wrap, h("button.primary", { type: "submit" }, "Merge"));

  const deleteButton = h("button.danger", { type: "button", id: "delete-identity", onclick: async () => {
    if (!await confirmAction(`Delete ${id}?`, `The identity and all its ${identity.face_count} faces are deleted. This cannot be undone.`)) return;
    try {
      const r = await api("DELETE", identityPath(id));
      toast(`Deleted ${id} and ${r.faces_deleted} faces`, "ok");
      location.hash = "#/";
    } catch (err) { toast(err.message); }
  } }, "Delete identity");

  view.replaceChildren(
    h("a.back", { href: "#/" }, "← Gallery"),
    h("div.toolbar", {}, title, h("code", {}, identity.identity_id), count, h("span.grow"),
      h("a.button.ghost", { href: "#/enrol?id=" + enc(id) }, "Add photos")),
    h("div.columns", {},
      h("section.panel", {}, h("h2", {}, "Name"), nameForm),
      h("section.panel", {}, h("h2", {}, "Metadata"), metaForm)),
    h("section.panel", {}, h("h2", {}, "Faces"), faceTools, faces, more),
    h("section.panel", {}, h("h2", {}, "Merge"), mergeForm),
    h("section.panel.danger-zone", {}, h("h2", {}, "Delete"), h("p.muted", {}, "Deletes the identity and every face of it."), deleteButton));
  await loadFaces(true);
}

/** An identity id input that suggests existing ids by prefix (one small page, never everything). */
function identityPicker(id, placeholder) {
  const list = h("datalist", { id: id + "-list" });
  const input = h("input", { id, placeholder, list: id + "-list", autocomplete: "off", "aria-label": placeholder });
  input.addEventListener("input", debounce(async () => {
    const prefix = input.value.trim();
    if (!prefix) return;
    try {
      const page = await api("GET", "/v1/identities", { query: { page_size: 10, prefix } });
      list.replaceChildren(...page.identities.map((i) => h("option", { value: i.identity_id }, i.display_name)));
    } catch { /* suggestions only */ }
  }));
  return { input, wrap: h("span", {}, input, list) };
}

// -- Enrol ------------------------------------------------------------------------------------
function enrolView(view, params) {
  const picker = identityPicker("enrol-id", "identity id, e.g. chris_evans");
  picker.input.value = params.get("id") || "";
  const name = h("input", { id: "enrol-name", placeholder: "display name (optional)", "aria-label": "Display name" });
  const hint = h("span.muted.small", { id: "enrol-hint" });
  const list = h("div.results", { id: "enrol-list" });
  const go = h("button.primary", { type: "button", id: "enrol-go", disabled: true }, "Enrol");
  const files = [];   // {file, row, status}

  const checkTarget = debounce(async () => {
    const id = picker.input.value.trim();
    if (!id) { hint.textContent = ""; return; }
    try {
      const i = await api("GET", identityPath(id));
      hint.textContent = `Existing: ${i.display_name || i.identity_id}, ${i.face_count} faces. The photos are added to it.`;
    } catch (e) {
      hint.textContent = e.status === 404 ? "New identity: created with the first accepted photo." : "";
    }
  });
  const update = () => {
    const waiting = files.filter((f) => f.status === "queued").length;
    go.disabled = !picker.input.value.trim() || !waiting;
    go.textContent = waiting ? `Enrol ${waiting} photo${waiting === 1 ? "" : "s"}` : "Enrol";
  };
  picker.input.addEventListener("input", () => { update(); checkTarget(); });

  function add(newFiles) {
    for (const file of newFiles) {
      const status = h("span.pill", {}, "queued");
      const detail = h("span.small.detail");
      const row = h("div.result", { dataset: { name: file.name } },
        h("img.preview", { src: URL.createObjectURL(file), alt: file.name }),
        h("div.grow", {}, h("div", {}, file.name), detail), status);
      files.push({ file, row, status: "queued", pill: status, detail });
      list.append(row);
    }
    update();
  }

  function show(entry, kind, text, detail = "") {
    entry.status = kind;
    entry.pill.className = "pill " + kind;
    entry.pill.textContent = text;
    entry.detail.textContent = detail;
    entry.row.dataset.status = kind;
  }

  go.addEventListener("click", async () => {
    const id = picker.input.value.trim();
    go.disabled = true;
    for (const entry of files.filter((f) => f.status === "queued")) {
      show(entry, "busy", "enrolling…");
      const form = new FormData();
      form.append("images", entry.file, entry.file.name);
      if (name.value.trim()) form.append("display_name", name.value.trim());
      try {
        const r = await api("POST", identityPath(id) + "/faces", { form });
        const warn = (r.warnings || []).map((w) => w.message).join("; ");
        if (r.face_ids.length) show(entry, "ok", "enrolled", `face #${r.face_ids[0]}${r.created ? " · new identity" : ""}${warn ? " · " + warn : ""}`);
        else if (r.rejected.length) show(entry, "bad", "rejected", r.rejected[0].reason);
        else if (r.duplicates.length) show(entry, "warn", "duplicate", "this identity already has this photo");
        else show(entry, "warn", "not enrolled", warn);
      } catch (e) {
        show(entry, "bad", "error", `${e.code}: ${e.message}`);
      }
    }
    const done = files.filter((f) => f.status === "ok").length;
    hint.replaceChildren(`${done} enrolled. `, h("a", { href: "#/identity/" + enc(id) }, `Open ${id}`));
    update();
  });

  view.replaceChildren(
    h("div.toolbar", {}, h("h1", {}, "Enrol")),
    h("section.panel", {},
      h("div.row.wrap", {}, picker.wrap, name, go),
      hint,
      dropZone("Photos of one person", add)),
    list);
  update();
  checkTarget();
}

// -- Try it -----------------------------------------------------------------------------------
function tryView(view) {
  const topK = h("input", { type: "number", id: "try-topk", min: 1, max: 20, value: 3, "aria-label": "Matches per face" });
  const cutoff = h("input", { type: "number", id: "try-cutoff", min: 0, max: 12, step: "any",
    placeholder: "default", "aria-label": "Cutoff (max distance)" });
  const stage = h("div.stage", { id: "stage" });
  const stageWrap = h("div.stage-wrap");
  const faces = h("div.results", { id: "try-faces" });
  const status = h("p.muted", { id: "try-status" });

  async function run(file) {
    const url = URL.createObjectURL(file);
    const img = h("img", { src: url, alt: "the photo", id: "try-photo" });
    stage.replaceChildren(img);
    stageWrap.replaceChildren(stage);
    faces.replaceChildren();
    status.textContent = "Identifying…";
    const form = new FormData();
    form.append("image", file, file.name);
    form.append("top_k", String(Math.max(1, Number(topK.value) || 1)));
    const requested = Number(cutoff.value) || 0;
    if (requested) form.append("max_distance", String(requested));
    try {
      // The answer carries no cutoff: without a requested one, Info says which default applied.
      const [result, info] = await Promise.all([
        api("POST", "/v1/identify", { form }),
        requested ? null : api("GET", "/v1/info"),
        img.decode().then(() => fit(img)).catch(() => {}),
      ]);
      const decided = requested ? { value: requested, source: "request", why: "the cutoff given above" }
        : { value: info.default_max_distance, source: SOURCES[info.default_max_distance_source][0],
            why: SOURCES[info.default_max_distance_source][1] };
      draw(img, result.faces, decided);
      if (result.faces.some((f) => !f.known)) await nearest(file, result.faces);
    } catch (e) {
      status.replaceChildren(errorBox(e));
    }
  }

  // For unknown faces: who was nearest, beyond the cutoff (a second search with the widest cutoff).
  async function nearest(file, found) {
    const form = new FormData();
    form.append("image", file, file.name);
    form.append("max_distance", "12");
    const wide = await api("POST", "/v1/identify", { form });
    const key = (b) => `${b.x},${b.y},${b.width},${b.height}`;
    found.forEach((f, n) => {
      const same = wide.faces.find((w) => key(w.box) === key(f.box));
      const m = same && same.matches[0];
      const slot = faces.querySelector(`.face-result[data-n="${n}"] .nearest`);
      if (!f.known && m && slot) slot.textContent = `Nearest: ${m.display_name || m.identity_id} at ${fmt(m.distance)}, beyond the cutoff.`;
    });
  }

  // Small photos are scaled up and big ones down to the stage; the boxes are in % of the photo.
  function fit(img) {
    const room = Math.max(200, stageWrap.clientWidth - 20);
    const scale = Math.min(room / img.naturalWidth, Math.min(560, 0.72 * innerHeight) / img.naturalHeight);
    img.style.width = `${Math.round(img.naturalWidth * scale)}px`;
    img.style.height = `${Math.round(img.naturalHeight * scale)}px`;
  }

  function draw(img, found, decided) {
    const W = img.naturalWidth, H = img.naturalHeight;
    const known = found.filter((f) => f.known).length;
    status.textContent = found.length
      ? `${found.length} face${found.length === 1 ? "" : "s"}: ${known} known, ${found.length - known} unknown. ` +
        `Cutoff ${fmt(decided.value, 2)} (${decided.source}: ${decided.why}).`
      : "No face found in this photo.";
    found.forEach((f, n) => {
      const best = f.matches[0];
      const label = f.known ? `${best.display_name || best.identity_id} · ${fmt(best.distance, 2)}` : "unknown";
      const b = f.box;
      const box = h("div.box." + (f.known ? "known" : "unknown"), {
        dataset: { n: String(n), name: f.known ? best.identity_id : "", box: `${b.x},${b.y},${b.width},${b.height}` },
        style: { left: `${(100 * b.x) / W}%`, top: `${(100 * b.y) / H}%`, width: `${(100 * b.width) / W}%`, height: `${(100 * b.height) / H}%` },
      }, h("span.label", {}, label));
      stage.append(box);
      faces.append(h("div.result.face-result", { dataset: { n: String(n) },
        onmouseenter: () => box.classList.add("hot"), onmouseleave: () => box.classList.remove("hot") },
        h("div.grow", {},
          h("div.row.tight", {}, h("strong", {}, `Face ${n + 1}`),
            h("span.pill." + (f.known ? "ok" : "warn"), {}, f.known ? "known" : "unknown"),
            h("span.muted.small", {}, `box ${b.x},${b.y} ${b.width}×${b.height} · score ${fmt(f.detection_score, 2)}`)),
          f.matches.length
            ? h("table.matches", {}, h("tr", {}, h("th", {}, "identity"), h("th", {}, "name"), h("th", {}, "distance")),
              ...f.matches.map((m) => h("tr", {},
                h("td", {}, h("a", { href: "#/identity/" + enc(m.identity_id) }, m.identity_id)),
                h("td", {}, m.display_name), h("td.num", {}, fmt(m.distance)))))
            : h("div.muted.small.nearest", {}, "No identity within the cutoff."),
          h("div.muted.small.decided", {}, `Decided by the ${decided.source} cutoff ${fmt(decided.value, 2)}: ${decided.why}`))));
    });
  }

  view.replaceChildren(
    h("div.toolbar", {}, h("h1", {}, "Try it")),
    h("section.panel", {},
      h("div.row.wrap", {}, h("label", {}, "Matches per face ", topK), h("label", {}, "Cutoff ", cutoff)),
      dropZone("A photo to identify", (fs) => run(fs[0]), false)),
    status,
    h("div.columns.try", {}, stageWrap, faces));
}

// -- Settings ---------------------------------------------------------------------------------
async function settingsView(view) {
  const table = h("table.info", { id: "info" });
  const target = h("select", { id: "cal-target", "aria-label": "Target" },
    h("option", { value: "fnir" }, "FNIR: enrolled faces missed, at most"),
    h("option", { value: "fpir" }, "FPIR: strangers accepted, at most"));
  const rate = h("input", { type: "number", id: "cal-rate", min: 0.0001, max: 0.5, step: "any", value: 0.01, "aria-label": "Rate" });
  const preview = h("div", { id: "cal-result" });
  const pinned = h("p.note", { id: "cal-pinned", hidden: true }, "FACESEARCH_MAX_DISTANCE (or --max-distance) is set " +
    "on the server, and it wins: an applied calibration is stored, but searches keep the configured cutoff.");
  const apply = h("button.danger", { type: "button", id: "cal-apply", hidden: true }, "Apply");

  async function loadInfo() {
    try {
      const i = await api("GET", "/v1/info");
      const [source, why] = SOURCES[i.default_max_distance_source];
      pinned.hidden = i.default_max_distance_source !== "CUTOFF_SOURCE_CONFIGURED";
      const rows = [
        ["Model", i.model_id], ["Dimension", i.dimension], ["Index", i.index_type],
        ["Identities", i.identity_count], ["Faces", i.face_count],
        ["Cutoff", `${fmt(i.default_max_distance, 3)}`], ["Cutoff source", `${source} (${why})`],
        ["Calibrated", i.calibrated_at ? new Date(i.calibrated_at * 1000).toLocaleString() +
          (i.calibration_stale ? ` · stale: ${i.changes_since_calibration} faces changed since` : "") : "never"],
        ["Version", i.version]];
      table.replaceChildren(...rows.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", { dataset: { key: k } }, String(v)))));
    } catch (e) { table.replaceChildren(h("tr", {}, h("td", {}, errorBox(e)))); }
  }

  const body = () => ({ [target.value === "fnir" ? "target_fnir" : "target_fpir"]: Number(rate.value) });
  function showCalibration(r) {
    preview.replaceChildren(h("table.info", {},
      ...[["Cutoff", fmt(r.max_distance, 3)], ["Expected FNIR", pct(r.expected_fnir)], ["Expected FPIR", pct(r.expected_fpir)],
        ["Identities", r.identities], ["Faces used", `${r.faces}${r.sampled ? " (a sample)" : ""}`],
        ["Genuine comparisons", r.genuine_comparisons], ["Impostor comparisons", r.impostor_comparisons],
        ["Applied", r.applied ? "yes" : "no, preview only"]]
        .map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", { dataset: { key: k } }, String(v))))));
  }
  const form = h("form.row.wrap", { id: "cal-form", onsubmit: async (e) => {
    e.preventDefault();
    preview.replaceChildren(h("p.muted", {}, "Calibrating…"));
    try {
      showCalibration(await api("POST", "/v1/calibrate", { json: { ...body(), apply: false } }));
      apply.hidden = false;
    } catch (err) { preview.replaceChildren(errorBox(err)); apply.hidden = true; }
  } }, target, rate, h("button.primary", { type: "submit", id: "cal-preview" }, "Preview"), apply);
  apply.addEventListener("click", async () => {
    if (!await confirmAction("Apply this cutoff?", "Every replica then identifies and verifies with it, " +
      "unless FACESEARCH_MAX_DISTANCE is set.", "Apply")) return;
    try {
      showCalibration(await api("POST", "/v1/calibrate", { json: { ...body(), apply: true } }));
      apply.hidden = true;
      await loadInfo();
      toast("Cutoff applied", "ok");
    } catch (err) { preview.replaceChildren(errorBox(err)); }
  });

  view.replaceChildren(
    h("div.toolbar", {}, h("h1", {}, "Settings")),
    h("div.columns", {},
      h("section.panel", {}, h("h2", {}, "Gallery"), table),
      h("section.panel", {}, h("h2", {}, "Calibrate the cutoff"),
        h("p.muted", {}, "Fits the cutoff to the enrolled faces. Preview shows the expected rates; Apply stores it."),
        pinned, form, preview)));
  await loadInfo();
}

// -- Unknown faces ----------------------------------------------------------------------------
// Faces Identify answered as unknown, clustered by the server (--keep-unknown-days; docs/api.md
// "Unknown faces"): name a cluster (it becomes an identity, or joins one) or forget it.
const UNKNOWN_PAGE = 12;

async function unknownView(view) {
  const state = { tokens: [""], page: 0 };
  const notice = h("div", { id: "unknown-notice" });
  const summary = h("span.muted", { id: "unknown-summary" });
  const list = h("div.clusters", { id: "clusters" });
  const prev = h("button.ghost", { type: "button", id: "unknown-prev", disabled: true }, "← Previous");
  const next = h("button.ghost", { type: "button", id: "unknown-next", disabled: true }, "Next →");
  const pager = h("div.pager", { hidden: true }, prev, next);
  const forgetAll = h("button.danger", { type: "button", id: "forget-all", onclick: async () => {
    if (!await confirmAction("Forget every unknown face?", "Every kept unknown face and its crop is deleted, " +
      "on every replica. This cannot be undone.", "Forget all")) return;
    try {
      const r = await api("DELETE", "/v1/unknown/clusters");
      toast(`${r.faces_deleted} unknown face${r.faces_deleted === 1 ? "" : "s"} forgotten`, "ok");
      state.tokens = [""];
      state.page = 0;
      await load();
    } catch (err) { toast(err.message); }
  } }, "Forget all");
  view.replaceChildren(
    h("div.toolbar", {}, h("h1", {}, "Unknown faces"), summary, h("span.grow"), forgetAll),
    notice, list, pager);

  try {
    const info = await api("GET", "/v1/info");
    notice.replaceChildren(info.keep_unknown_days > 0
      ? h("p.muted", { id: "unknown-on" }, `This server keeps the faces Identify cannot name for ` +
          `${info.keep_unknown_days} day${info.keep_unknown_days === 1 ? "" : "s"}, and groups them into ` +
          "the clusters below. Name a cluster to enrol its faces; forget it to delete them.")
      : h("div.empty", { id: "unknown-off" }, "This server keeps no unknown faces. To keep the faces Identify " +
          "cannot name and group them here, start it with --keep-unknown-days N (FACESEARCH_KEEP_UNKNOWN_DAYS): " +
          "they are personal data, kept N days. Clusters an earlier run kept are still listed below, so that " +
          "they can be forgotten."));
  } catch (e) { notice.replaceChildren(errorBox(e)); }

  function clusterCard(c) {
    const when = (t) => (t ? new Date(t).toLocaleString() : "");
    const result = h("div.small", { dataset: { role: "result" } });
    const name = identityPicker(`name-${c.cluster_id}`, "identity id (new or existing)");   // {input, wrap}
    const display = h("input", { type: "text", placeholder: "display name (optional)", "aria-label": "display name",
      dataset: { role: "display-name" } });
    const card = h("section.panel.cluster", { dataset: { cluster: c.cluster_id } },
      h("div.row.wrap", {},
        h("strong", {}, `Cluster ${c.cluster_id}`),
        h("span.muted", { dataset: { role: "size" } }, `${c.size} face${c.size === 1 ? "" : "s"}`),
        h("span.muted.small", {}, `seen ${when(c.first_seen)} – ${when(c.last_seen)}`),
        c.sources.filter(Boolean).length ? h("span.muted.small", {}, "from " + c.sources.filter(Boolean).join(", ")) : ""),
      h("div.strip", {}, ...c.sample_face_ids.map((f) => cropImage(f, "?", unknownImagePath(f)))),
      h("form.row.wrap", { onsubmit: async (e) => {
        e.preventDefault();
        const identity = name.input.value.trim();
        if (!identity) return toast("Give the identity id to enrol these faces under");
        try {
          const r = await api("POST", `/v1/unknown/clusters/${enc(c.cluster_id)}:enroll`,
            { json: { identity_id: identity, display_name: display.value.trim() } });
          toast(`${r.face_ids.length} face${r.face_ids.length === 1 ? "" : "s"} enrolled as ${identity}` +
            (r.created ? " (new)" : ""), "ok");
          card.replaceWith(h("p.muted", { dataset: { enrolled: c.cluster_id } }, "Enrolled as ",
            h("a", { href: "#/identity/" + enc(identity) }, identity)));
        } catch (err) { result.replaceChildren(errorBox(err)); }
      } }, name.wrap, display, h("button.primary", { type: "submit", dataset: { role: "enrol" } }, "Enrol"),
        h("button.danger", { type: "button", dataset: { role: "forget" }, onclick: async () => {
          if (!await confirmAction(`Forget cluster ${c.cluster_id}?`, `Its ${c.size} faces and their crops are ` +
            "deleted, on every replica. This cannot be undone.", "Forget")) return;
          try {
            await api("DELETE", `/v1/unknown/clusters/${enc(c.cluster_id)}`);
            card.remove();
            toast(`Cluster ${c.cluster_id} forgotten`, "ok");
          } catch (err) { result.replaceChildren(errorBox(err)); }
        } }, "Forget")),
      result);
    return card;
  }

  async function load() {
    list.replaceChildren(h("p.muted", {}, "Loading…"));
    try {
      const page = await api("GET", "/v1/unknown/clusters", { query: { page_size: UNKNOWN_PAGE,
        page_token: state.tokens[state.page] } });
      if (page.next_page_token) state.tokens[state.page + 1] = page.next_page_token;
      else state.tokens.length = state.page + 1;
      prev.disabled = state.page === 0;
      next.disabled = !page.next_page_token;
      pager.hidden = prev.disabled && next.disabled;
      summary.textContent = `${page.total_faces} kept · ${page.waiting_faces} in no cluster yet`;
      list.replaceChildren(...(page.clusters.length ? page.clusters.map(clusterCard)
        : [h("div.empty", { id: "no-clusters" }, "No clusters of unknown faces.")]));
    } catch (e) { list.replaceChildren(errorBox(e)); }
  }
  prev.addEventListener("click", () => { if (state.page > 0) { state.page--; load(); } });
  next.addEventListener("click", () => { if (state.tokens[state.page + 1]) { state.page++; load(); } });
  await load();
}

// -- routing ----------------------------------------------------------------------------------
function decoded(text) {
  try { return decodeURIComponent(text); } catch { return text; }   // a hand-typed % in the address
}

async function route() {
  const [path, query] = (location.hash.slice(1) || "/").split("?");
  const params = new URLSearchParams(query || "");
  const view = $("#view");
  const parts = path.split("/").filter(Boolean);
  const page = parts[0] || "gallery";
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active",
    a.dataset.nav === (page === "identity" ? "gallery" : page)));
  view.dataset.page = page;
  view.dataset.ready = "";
  try {
    if (page === "identity") await identityView(view, decoded(parts.slice(1).join("/")));
    else if (page === "enrol") enrolView(view, params);
    else if (page === "try") tryView(view);
    else if (page === "settings") await settingsView(view);
    else if (page === "unknown") await unknownView(view);
    else await galleryView(view, params);
  } finally {
    view.dataset.ready = page;   // the browser tests wait for this
  }
}

setupToken();
showTokenState();
window.addEventListener("hashchange", route);
route();
