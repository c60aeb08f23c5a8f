// Proteus web page: accounts, picking and uploading photos, starting try-ons, and the live history.
// Plain ES modules, no build step, no libraries.
import { api, ApiError, onUnauthorized, plainMessage, randomSeed } from "./api.js";
import { checkFile, DEFAULT_MAX_BYTES, fileType, sendToStorage } from "./upload.js";
import { LiveConnection } from "./live.js";
import { loadApiKeys, wireApiKeys } from "./keys.js";

const PAGE_SIZE = 24;
const URL_CACHE_MS = 10 * 60 * 1000;
const RUNS_KEY = "proteus.runs.v1."; // + user id: localStorage of the settings each try-on ran with
const MAX_RUNS = 200;
const CATEGORY_NAME = { upper: "upper body", lower: "lower body", overall: "full outfit" };
// "Area to repaint": the person photo with the mask's area tinted this colour, this strongly.
const REPAINT_TINT = "rgb(255 0 150)";
const REPAINT_ALPHA = 0.55;

const $ = (sel, root = document) => root.querySelector(sel);

const state = {
  user: null,
  maxBytes: DEFAULT_MAX_BYTES,
  smoke: false,
  rows: new Map(), // vton id -> row (newest first by createdAt)
  hasMore: false,
  files: { person: null, garment: null },
  uploaded: new Map(), // File -> storage key (the same file is not sent twice)
  previews: new Map(), // vton id -> object URL of the person photo picked in this tab
  pickerPreview: { person: null, garment: null },
  notes: new Map(), // vton id -> an error of this page about it ("couldn't start: ...")
  // vton id -> {category, variant, steps, guidance} it was last started with from this browser
  // ("Try again" keeps them; category "auto" marks the category shown as detected)
  runs: new Map(),
  urls: new Map(), // storage key -> {url, at} | {promise}
  live: null,
  refetchTimer: null,
  openId: null, // the try-on shown in the result dialog
};

// ---------------------------------------------------------------- small helpers

function show(el, on = true) {
  el.hidden = !on;
}

function setText(el, text) {
  el.textContent = text || "";
  el.hidden = !text;
}

function announce(text) {
  const a = $("#announcer");
  a.textContent = "";
  setTimeout(() => (a.textContent = text), 50);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c) node.append(c);
  return node;
}

function formatDate(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  return new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" }).format(d);
}

function createdAt(row) {
  return row.createdAt || row.created_at || "";
}

function clearFieldErrors(form) {
  form.querySelectorAll(".field-error, .form-error").forEach((p) => setText(p, ""));
  form.querySelectorAll("[aria-invalid]").forEach((i) => i.removeAttribute("aria-invalid"));
}

function fieldError(input, errorEl, text) {
  setText(errorEl, text);
  if (text) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
}

// ---------------------------------------------------------------- views and routing

const VIEWS = ["auth", "app", "account"];

function showView(name, focus = true) {
  $("#boot-status").hidden = true;
  for (const v of VIEWS) show($(`#view-${v}`), v === name);
  show($("#site-nav"), !!state.user);
  document.querySelectorAll("[data-nav]").forEach((a) => {
    if (a.dataset.nav === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
  if (focus) {
    const h = $(`#view-${name} h1`);
    if (h && document.activeElement !== h) h.focus({ preventScroll: false });
  }
}

function route(focus = true) {
  const hash = location.hash || "#/";
  if (!state.user) {
    const signup = hash === "#/signup";
    $("#auth-title").textContent = signup ? "Create an account" : "Log in";
    show($("#signup-form"), signup);
    show($("#login-form"), !signup);
    document.title = `${signup ? "Sign up" : "Log in"} – Proteus`;
    showView("auth", focus);
    return;
  }
  if (hash === "#/account") {
    fillAccount();
    document.title = "Account – Proteus";
    showView("account", focus);
  } else {
    document.title = "Proteus – virtual try-on";
    showView("app", focus);
  }
}

function authNotice(text) {
  setText($("#auth-notice"), text);
}

// ---------------------------------------------------------------- session

async function enterApp(user, focus = true) {
  state.user = user;
  loadRuns();
  authNotice("");
  if (!location.hash || location.hash === "#/login" || location.hash === "#/signup") {
    history.replaceState(null, "", "#/");
  }
  route(focus);
  state.live = new LiveConnection({
    getToken: () => api.wsToken(),
    onMessage: handleLiveMessage,
    onOpen: (isReconnect) => {
      loadHistory();
      if (isReconnect) refreshHealth(); // the service may have restarted with another model
    },
    onState: showLiveState,
    onAuthLost: () => leaveApp("Your session ended. Please log in again."),
  });
  await loadHistory();
  state.live.start();
}

function leaveApp(notice) {
  if (state.live) state.live.stop();
  state.live = null;
  state.user = null;
  state.rows.clear();
  state.urls.clear();
  state.notes.clear();
  state.runs.clear();
  state.uploaded.clear();
  for (const u of state.previews.values()) URL.revokeObjectURL(u);
  state.previews.clear();
  $("#history-list").replaceChildren();
  resetCreateForm();
  for (const id of ["#login-password", "#signup-password"]) $(id).value = "";
  const dlg = $("#result-dialog");
  if (dlg.open) dlg.close();
  history.replaceState(null, "", "#/login");
  route();
  authNotice(notice || "");
}

onUnauthorized(() => {
  if (state.user) leaveApp("Your session ended. Please log in again.");
});

/** The next person on this browser starts from an empty form. */
function resetCreateForm() {
  const form = $("#create-form");
  form.reset();
  for (const role of ["person", "garment"]) {
    state.files[role] = null;
    renderPickerPreview(role, null);
    hideProgress(role);
  }
  clearFieldErrors(form);
  $("#create-status").textContent = "";
  $(".advanced").open = false;
}

let healthTimer = null;

/** Read /health: the smoke banner and the upload limit. Asks again while no model has loaded yet. */
function refreshHealth() {
  clearTimeout(healthTimer);
  api.health().then((health) => {
    applyHealth(health);
    const weave = health && health.models && health.models.weave;
    if (!weave) healthTimer = setTimeout(refreshHealth, 10_000);
  }).catch(() => {
    healthTimer = setTimeout(refreshHealth, 30_000);
  });
}

async function boot() {
  refreshHealth();
  let user = null;
  try {
    user = await api.me();
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 401) {
      $("#boot-status").hidden = true;
      authNotice(plainMessage(err));
    }
  }
  // on first load the focus stays at the top of the page, where the browser put it
  if (user) await enterApp(user, false);
  else route(false);
}

function applyHealth(health) {
  if (!health || typeof health !== "object") return;
  state.smoke = health.smoke === true;
  show($("#smoke-banner"), state.smoke);
  const max =
    health.max_upload_bytes ??
    (health.limits && health.limits.max_upload_bytes) ??
    (health.uploads && health.uploads.max_bytes);
  if (Number.isFinite(max) && max > 0) state.maxBytes = max;
}

// ---------------------------------------------------------------- log in, sign up, account

function wireAuth() {
  const login = $("#login-form");
  login.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearFieldErrors(login);
    const email = $("#login-email");
    const password = $("#login-password");
    let ok = true;
    if (!email.value.trim()) {
      fieldError(email, $("#login-email-error"), "Enter your email.");
      ok = false;
    }
    if (!password.value) {
      fieldError(password, $("#login-password-error"), "Enter your password.");
      ok = false;
    }
    if (!ok) return login.querySelector("[aria-invalid]").focus();
    const button = login.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await api.login(email.value.trim(), password.value);
      const user = await api.me();
      password.value = "";
      await enterApp(user);
    } catch (err) {
      const text = err instanceof ApiError && (err.status === 401 || err.status === 403)
        ? "Wrong email or password."
        : plainMessage(err);
      setText($("#login-error"), text);
    } finally {
      button.disabled = false;
    }
  });

  const signup = $("#signup-form");
  const fields = {
    user_name: [$("#signup-name"), $("#signup-name-error")],
    email: [$("#signup-email"), $("#signup-email-error")],
    password: [$("#signup-password"), $("#signup-password-error")],
  };
  signup.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearFieldErrors(signup);
    const values = {
      user_name: fields.user_name[0].value.trim(),
      email: fields.email[0].value.trim(),
      password: fields.password[0].value,
    };
    const missing = { user_name: "Enter a name.", email: "Enter your email.", password: "Choose a password." };
    let ok = true;
    for (const [k, [input, errEl]] of Object.entries(fields)) {
      if (!values[k]) {
        fieldError(input, errEl, missing[k]);
        ok = false;
      }
    }
    if (ok && !fields.email[0].checkValidity()) {
      fieldError(fields.email[0], fields.email[1], "That doesn't look like an email address.");
      ok = false;
    }
    if (!ok) return signup.querySelector("[aria-invalid]").focus();
    const button = signup.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await api.signup(values.user_name, values.email, values.password);
      await api.login(values.email, values.password);
      const user = await api.me();
      fields.password[0].value = "";
      await enterApp(user);
    } catch (err) {
      const text = plainMessage(err);
      const target = err instanceof ApiError && err.field && fields[err.field];
      if (target) {
        fieldError(target[0], target[1], text);
        target[0].focus();
      } else {
        setText($("#signup-error"), text);
      }
    } finally {
      button.disabled = false;
    }
  });

  const logout = async () => {
    try {
      await api.logout();
    } catch {
      /* the cookie is gone or the server is away: leave the page logged out either way */
    }
    leaveApp("You are logged out.");
  };
  $("#logout-button").addEventListener("click", logout);
  $("#account-logout").addEventListener("click", logout);

  $("#account-delete").addEventListener("click", async () => {
    const ok = await confirmDialog(
      "Delete your account?",
      "Your account, every photo you uploaded and every try-on will be deleted. This cannot be undone.",
      "Delete account",
    );
    if (!ok) return;
    const button = $("#account-delete");
    button.disabled = true;
    setText($("#account-error"), "");
    try {
      await api.deleteAccount();
      const key = runsKey();
      if (key) storageDo((s) => s.removeItem(key));
      leaveApp("Your account and everything in it was deleted.");
      history.replaceState(null, "", "#/signup");
      route();
    } catch (err) {
      setText($("#account-error"), plainMessage(err));
    } finally {
      button.disabled = false;
    }
  });
}

function fillAccount() {
  const u = state.user || {};
  $("#account-name").textContent = u.user_name || "";
  $("#account-email").textContent = u.email || "";
  $("#account-created").textContent = formatDate(u.createdAt || u.created_at);
  $("#api-key-new").hidden = true;
  loadApiKeys();
}

function confirmDialog(title, text, okLabel) {
  const dlg = $("#confirm-dialog");
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  $("#confirm-ok").textContent = okLabel;
  dlg.returnValue = "cancel";
  return new Promise((resolve) => {
    dlg.addEventListener("close", () => resolve(dlg.returnValue === "confirm"), { once: true });
    dlg.showModal();
  });
}

// ---------------------------------------------------------------- picking photos

function wirePickers() {
  state.emptyPreview = {};
  for (const role of ["person", "garment"]) {
    state.emptyPreview[role] = $(`[data-preview="${role}"] .preview-empty`).cloneNode(true);
    const input = $(`#${role}-file`);
    const drop = $(`[data-drop="${role}"]`);
    input.addEventListener("change", () => {
      if (input.files && input.files[0]) pick(role, input.files[0]);
    });
    drop.addEventListener("dragenter", (e) => {
      e.preventDefault();
      drop.classList.add("dragging");
    });
    drop.addEventListener("dragover", (e) => {
      e.preventDefault();
      if (e.dataTransfer) e.dataTransfer.dropEffect = "copy";
      drop.classList.add("dragging");
    });
    drop.addEventListener("dragleave", (e) => {
      if (!drop.contains(e.relatedTarget)) drop.classList.remove("dragging");
    });
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      drop.classList.remove("dragging");
      const file = e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files[0];
      if (!file) return;
      try {
        const dt = new DataTransfer();
        dt.items.add(file);
        input.files = dt.files;
      } catch {
        /* older browsers: the file is still picked below */
      }
      pick(role, file);
      input.focus();
    });
  }
  // A file dropped beside the zones must not replace the page with the image.
  for (const type of ["dragover", "drop"]) {
    window.addEventListener(type, (e) => {
      if (e.dataTransfer && [...(e.dataTransfer.types || [])].includes("Files")) e.preventDefault();
    });
  }
}

function pick(role, file) {
  const input = $(`#${role}-file`);
  const errorEl = $(`#${role}-error`);
  const problem = checkFile(file, state.maxBytes);
  fieldError(input, errorEl, problem);
  hideProgress(role);
  state.files[role] = problem ? null : file;
  renderPickerPreview(role, problem ? null : file);
  if (problem) {
    input.value = "";
    announce(`${role === "person" ? "Person" : "Garment"} photo: ${problem}`);
  }
}

function renderPickerPreview(role, file) {
  const box = $(`[data-preview="${role}"]`);
  if (state.pickerPreview[role]) {
    // kept alive while a try-on started from it still shows it
    const inUse = [...state.previews.values()].includes(state.pickerPreview[role]);
    if (!inUse) URL.revokeObjectURL(state.pickerPreview[role]);
    state.pickerPreview[role] = null;
  }
  if (!file) {
    box.replaceChildren(state.emptyPreview[role].cloneNode(true));
    box.classList.remove("has-file");
    return;
  }
  const url = URL.createObjectURL(file);
  state.pickerPreview[role] = url;
  box.classList.add("has-file");
  const name = el("span", { class: "preview-name", text: file.name || "photo" });
  const img = el("img", { src: url, alt: `Chosen ${role} photo: ${file.name || "photo"}` });
  img.addEventListener("error", () => {
    // HEIC and friends where this browser can't draw them: the server converts them.
    box.replaceChildren(
      el("span", { class: "preview-placeholder" },
        pictureIcon(),
        el("span", { text: "No preview in this browser" }),
      ),
      name,
    );
  });
  box.replaceChildren(img, name);
}

function pictureIcon() {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", "preview-icon");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", "M3 5h18v14H3zM5 17h14l-4.5-6-3.5 4.5-2.5-3z");
  path.setAttribute("fill-rule", "evenodd");
  svg.append(path);
  return svg;
}

function showProgress(role, fraction, text) {
  const wrap = $(`[data-progress="${role}"]`);
  show(wrap, true);
  wrap.querySelector("progress").value = fraction;
  $(`[data-progress-text="${role}"]`).textContent = text;
}

function hideProgress(role) {
  show($(`[data-progress="${role}"]`), false);
}

async function uploadPicked(role) {
  const file = state.files[role];
  const cached = state.uploaded.get(file);
  if (cached) return cached;
  showProgress(role, 0, "Uploading… 0%");
  try {
    const signed = await api.presignUpload(file.name || `${role}.jpg`, fileType(file), file.size);
    await sendToStorage(signed, file, (f) => showProgress(role, f, `Uploading… ${Math.round(f * 100)}%`));
    showProgress(role, 1, "Uploaded");
    state.uploaded.set(file, signed.key);
    return signed.key;
  } catch (err) {
    hideProgress(role);
    fieldError($(`#${role}-file`), $(`#${role}-error`), plainMessage(err, { context: "upload", maxBytes: state.maxBytes }));
    throw err;
  }
}

// ---------------------------------------------------------------- starting a try-on

function readAdvanced() {
  const specs = [
    ["steps", "#opt-steps", "#opt-steps-error", 1, 150, true],
    ["guidance", "#opt-guidance", "#opt-guidance-error", 0, 20, false],
    ["seed", "#opt-seed", "#opt-seed-error", 0, 4294967295, true],
  ];
  const out = {};
  let ok = true;
  for (const [name, sel, errSel, min, max, integer] of specs) {
    const input = $(sel);
    const raw = input.value.trim();
    if (!raw && input.validity.badInput) {
      fieldError(input, $(errSel), "Enter a number.");
      ok = false;
      continue;
    }
    if (!raw) continue;
    const n = Number(raw);
    if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
      fieldError(input, $(errSel), `Enter ${integer ? "a whole number" : "a number"} from ${min} to ${max}.`);
      ok = false;
      continue;
    }
    out[name] = n;
  }
  if (!ok) $(".advanced").open = true;
  return ok ? out : null;
}

function category() {
  const c = document.querySelector('input[name="category"]:checked');
  return c ? c.value : "auto";
}

/** "default" or "fast" from the Quality choice. */
function preset() {
  const p = document.querySelector('input[name="preset"]:checked');
  return p && p.value === "fast" ? "fast" : "default";
}

/** "mask" or "maskfree" (the default) from the Advanced choice ("maskfree" when FASHN is chosen). */
function variant() {
  const v = document.querySelector('input[name="variant"]:checked');
  return v && v.value === "mask" ? "mask" : "maskfree";
}

/** The FASHN VTON request fields when that model is chosen in Advanced, else {}. */
function fashnParams() {
  const v = document.querySelector('input[name="variant"]:checked');
  if (!v || v.value !== "fashn-vton-1.5") return {};
  return {
    model: "fashn-vton-1.5",
    garment_photo_type: $("#opt-photo-type").value,
    segmentation_free: $("#opt-segmentation-free").checked,
  };
}

function wireModelChoice() {
  const options = $("#fashn-options");
  if (!options) return;
  for (const input of document.querySelectorAll('input[name="variant"]')) {
    input.addEventListener("change", () => { options.hidden = !fashnParams().model; });
  }
}

function wireCreate() {
  const form = $("#create-form");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    setText($("#create-error"), "");
    for (const sel of ["#opt-steps", "#opt-guidance", "#opt-seed"]) fieldError($(sel), $(`${sel}-error`), "");
    let ok = true;
    for (const role of ["person", "garment"]) {
      const input = $(`#${role}-file`);
      const errorEl = $(`#${role}-error`);
      if (!state.files[role]) {
        if (!errorEl.textContent || errorEl.hidden) {
          fieldError(input, errorEl, `Choose a photo of the ${role === "person" ? "person" : "garment"}.`);
        }
        ok = false;
      } else {
        const problem = checkFile(state.files[role], state.maxBytes);
        fieldError(input, errorEl, problem);
        if (problem) ok = false;
      }
    }
    const advanced = readAdvanced();
    if (!ok || !advanced) {
      const first = form.querySelector("[aria-invalid]");
      if (first) first.focus();
      return;
    }
    const submit = $("#create-submit");
    const status = $("#create-status");
    submit.disabled = true;
    status.textContent = "Uploading photos…";
    try {
      const results = await Promise.allSettled([uploadPicked("person"), uploadPicked("garment")]);
      if (results.some((r) => r.status === "rejected")) {
        status.textContent = "";
        const first = form.querySelector("[aria-invalid]");
        if (first) first.focus();
        return;
      }
      const [personKey, garmentKey] = results.map((r) => r.value);
      status.textContent = "Starting the try-on…";
      const cat = category();
      const body = { user_snap: personKey, uncleaned_outfit: garmentKey };
      if (cat !== "auto") body.category = cat;
      let row;
      try {
        row = await api.createTryOn(body);
      } catch (err) {
        status.textContent = "";
        setText($("#create-error"), plainMessage(err));
        return;
      }
      if (state.pickerPreview.person) state.previews.set(row.id, state.pickerPreview.person);
      upsertRow(row);
      renderHistory();
      const params = { ...advanced };
      if (params.seed === undefined) params.seed = randomSeed();
      if (variant() === "mask") params.variant = "mask";
      Object.assign(params, fashnParams());
      if (preset() === "fast") params.preset = "fast";
      const started = await startJob(row, cat, params);
      status.textContent = started ? "Started. Watch it in your try-ons below." : "";
      if (!started) setText($("#create-error"), state.notes.get(row.id));
      for (const role of ["person", "garment"]) hideProgress(role);
    } finally {
      submit.disabled = false;
    }
  });
}

/**
 * POST /jobs/weaver for a try-on row; returns true when the job was queued. `cat` is sent as
 * asked ("auto" too: the row's own category may be the one tailor found last time).
 */
async function startJob(row, cat, params = {}) {
  const body = { vton_id: row.id, user_snap_s3: row.user_snap, uncleaned_outfit_s3: row.uncleaned_outfit };
  if (cat) body.category = cat;
  Object.assign(body, params);
  const kept = { category: cat || "auto", variant: params.variant === "mask" ? "mask" : "maskfree" };
  for (const k of ["steps", "guidance", "preset", "model", "garment_photo_type", "segmentation_free"]) {
    if (params[k] !== undefined) kept[k] = params[k];
  }
  rememberRun(row.id, kept);
  state.notes.delete(row.id);
  try {
    await api.startWeave(body);
    Object.assign(row, {
      status: "queued", error: null, progress: null, progress_step: null, progress_steps: null,
      outfit_try_on: null,
    });
    upsertRow(row);
    renderCard(row);
    announce("Try-on queued.");
    scheduleRefetch(300);
    return true;
  } catch (err) {
    state.notes.set(row.id, `Couldn't start: ${plainMessage(err)}`);
    renderCard(row);
    return false;
  }
}

// ---------------------------------------------------------------- what each try-on ran with

/** Run fn(localStorage); null where storage is off (private mode, a full quota). */
function storageDo(fn) {
  try {
    return fn(window.localStorage);
  } catch {
    return null;
  }
}

function runsKey() {
  return state.user && state.user.id ? RUNS_KEY + state.user.id : null;
}

function loadRuns() {
  state.runs.clear();
  const key = runsKey();
  const raw = key && storageDo((s) => s.getItem(key));
  if (!raw) return;
  let saved;
  try {
    saved = JSON.parse(raw);
  } catch {
    return;
  }
  if (!saved || typeof saved !== "object") return;
  for (const [id, run] of Object.entries(saved)) {
    if (run && typeof run === "object" && !Array.isArray(run)) state.runs.set(id, run);
  }
}

function saveRuns() {
  const key = runsKey();
  if (!key) return;
  const entries = [...state.runs].slice(-MAX_RUNS); // the newest last
  storageDo((s) => s.setItem(key, JSON.stringify(Object.fromEntries(entries))));
}

function rememberRun(id, run) {
  state.runs.delete(id);
  state.runs.set(id, run);
  saveRuns();
}

function forgetRun(id) {
  if (state.runs.delete(id)) saveRuns();
}

// ---------------------------------------------------------------- history

function upsertRow(row) {
  if (!row || !row.id) return;
  const old = state.rows.get(row.id);
  state.rows.set(row.id, old ? Object.assign(old, row) : { ...row });
}

function sortedRows() {
  return [...state.rows.values()].sort((a, b) => {
    const d = String(createdAt(b)).localeCompare(String(createdAt(a)));
    return d || String(b.id).localeCompare(String(a.id));
  });
}

let loading = null;
let loadAgain = false;

/** Fetch the newest page and merge it in (rows gone from the server's newest page are dropped). */
async function loadHistory() {
  if (!state.user) return;
  if (loading) {
    loadAgain = true;
    return loading;
  }
  loading = (async () => {
    try {
      const page = await api.listTryOns(PAGE_SIZE);
      setText($("#history-error"), "");
      const rows = Array.isArray(page) ? page : page.items || [];
      const ids = new Set(rows.map((r) => r.id));
      const full = rows.length >= PAGE_SIZE;
      const oldest = full ? String(createdAt(rows[rows.length - 1])) : "";
      for (const [id, row] of state.rows) {
        if (!ids.has(id) && (!full || String(createdAt(row)) >= oldest)) state.rows.delete(id);
      }
      for (const r of rows) {
        const old = state.rows.get(r.id);
        // a progress message may be ahead of the row the server had when it answered
        if (old && old.status === "processing" && r.status === "processing" &&
            (old.progress_step || 0) > (r.progress_step || 0)) {
          r.progress_step = old.progress_step;
          r.progress_steps = old.progress_steps;
        }
        upsertRow(r);
      }
      if (state.rows.size <= rows.length) state.hasMore = full;
      renderHistory();
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return;
      setText($("#history-error"), `Couldn't load your try-ons: ${plainMessage(err)}`);
      if (err instanceof ApiError && err.status === 429) scheduleRefetch((err.retryAfter || 5) * 1000);
    }
  })();
  try {
    await loading;
  } finally {
    loading = null;
    if (loadAgain) {
      loadAgain = false;
      loadHistory();
    }
  }
}

async function loadOlder() {
  const rows = sortedRows();
  const last = rows[rows.length - 1];
  if (!last) return;
  const button = $("#load-more");
  button.disabled = true;
  try {
    const page = await api.listTryOns(PAGE_SIZE, last.id);
    const more = Array.isArray(page) ? page : page.items || [];
    more.forEach(upsertRow);
    state.hasMore = more.length >= PAGE_SIZE;
    renderHistory();
  } catch (err) {
    setText($("#history-error"), `Couldn't load older try-ons: ${plainMessage(err)}`);
  } finally {
    button.disabled = false;
  }
}

function scheduleRefetch(ms = 150) {
  clearTimeout(state.refetchTimer);
  state.refetchTimer = setTimeout(() => loadHistory(), ms);
}

function handleLiveMessage(msg) {
  if (msg.event === "progress") {
    const row = state.rows.get(msg.vton_id);
    if (!row) return scheduleRefetch();
    if (row.status === "done" || row.status === "failed") return;
    row.status = "processing";
    row.progress_step = msg.step;
    row.progress_steps = msg.steps;
    row.progress = msg.steps ? msg.step / msg.steps : null;
    renderCard(row);
    return;
  }
  if (msg.status === "done" || msg.status === "failed") {
    $("#create-status").textContent = "";
    const row = state.rows.get(msg.vton_id);
    if (row && msg.job_type !== "tailor") {
      if (msg.status === "done") {
        row.status = "done";
        if (msg.result_s3_key) row.outfit_try_on = msg.result_s3_key;
        announce("A try-on is ready.");
      } else {
        row.status = "failed";
        row.error = msg.error || row.error;
        announce(`A try-on failed: ${failureText(row)}`);
      }
      renderCard(row);
    }
    scheduleRefetch();
  }
}

function showLiveState(s) {
  const p = $("#live-status");
  p.dataset.state = s;
  p.textContent = {
    connecting: "Connecting…",
    open: "Live updates on",
    reconnecting: "Connection lost. Reconnecting…",
    offline: "You are offline. Updates resume when you're back.",
  }[s] || s;
}

/** Why a try-on failed, in plain words (the server's own words where there is no plainer way). */
function failureText(row) {
  const error = String(row.error || "").trim();
  if (!error) return "The model failed (no reason given).";
  if (/not a readable image|cannot identify image|not an image/i.test(error)) {
    const which = /garment|outfit/i.test(error) ? "The garment photo" : /person|user_snap|snap/i.test(error) ? "The person photo" : "A photo";
    return `${which} is not an image we can read. Choose another photo and try again.`;
  }
  if (/too (large|big)|exceeds/i.test(error)) return `A photo is too big for the model: ${error}`;
  return `The model failed: ${error}`;
}

const STATUS_LABEL = { queued: "Queued", processing: "Working", done: "Done", failed: "Failed" };

function renderHistory() {
  const list = $("#history-list");
  const rows = sortedRows();
  const wanted = new Set(rows.map((r) => String(r.id)));
  for (const li of [...list.children]) if (!wanted.has(li.dataset.id)) li.remove();
  let prev = null;
  for (const row of rows) {
    const li = renderCard(row);
    const expected = prev ? prev.nextSibling : list.firstChild;
    if (li !== expected) list.insertBefore(li, expected);
    prev = li;
  }
  show($("#history-empty"), rows.length === 0);
  show($("#load-more"), state.hasMore && rows.length > 0);
}

function cardFor(id) {
  return document.querySelector(`#history-list > li[data-id="${CSS.escape(String(id))}"]`);
}

/** Build or update one card in place. Returns the <li>. */
function renderCard(row) {
  let li = cardFor(row.id);
  if (!li) {
    li = el("li", { class: "tryon", "data-id": String(row.id) });
    li.append(
      el("div", { class: "tryon-media" }),
      el("div", { class: "tryon-body" },
        el("p", { class: "tryon-meta" },
          el("span", { class: "badge" }),
          el("time", { class: "tryon-time" }),
          el("span", { class: "tryon-run muted" }),
        ),
        el("div", { class: "tryon-progress", hidden: true }),
        el("p", { class: "tryon-error", hidden: true }),
        el("p", { class: "tryon-category asset-category", hidden: true }),
        el("div", { class: "tryon-assets assets", hidden: true }),
        el("div", { class: "tryon-actions" }),
      ),
    );
    const list = $("#history-list");
    if (!li.parentNode) list.prepend(li);
  }
  const status = row.status || "queued";
  const note = state.notes.get(row.id);
  const signature = `${status}|${row.outfit_try_on || ""}|${row.error || ""}|${note || ""}|${row.result_expired_at || ""}|${row.inputs_expired_at || ""}`;
  li.dataset.status = status;
  li.setAttribute("aria-label", `Try-on from ${formatDate(createdAt(row))}: ${STATUS_LABEL[status] || status}`);
  const badge = $(".badge", li);
  badge.textContent = STATUS_LABEL[status] || status;
  badge.dataset.status = status;
  const time = $(".tryon-time", li);
  time.dateTime = createdAt(row);
  time.textContent = formatDate(createdAt(row));
  // which model and seed made it (the newest job of the try-on)
  const ran = [row.model, row.seed !== null && row.seed !== undefined ? `seed ${row.seed}` : null].filter(Boolean);
  $(".tryon-run", li).textContent = ran.length ? ` · ${ran.join(" · ")}` : "";

  // progress: updated in place so focus and screen readers are not disturbed
  const prog = $(".tryon-progress", li);
  if (status === "queued" || status === "processing") {
    let bar = $("progress", prog);
    if (!bar) {
      bar = el("progress", { max: "1", "aria-label": "Try-on progress" });
      prog.replaceChildren(bar, el("span", { class: "tryon-step" }));
    }
    const step = Number(row.progress_step) || 0;
    const steps = Number(row.progress_steps) || 0;
    const label = $(".tryon-step", prog);
    if (status === "processing" && steps > 0) {
      bar.max = steps;
      bar.value = Math.min(step, steps);
      label.textContent = `Step ${Math.min(step, steps)} of ${steps}`;
    } else if (status === "processing") {
      bar.removeAttribute("value");
      label.textContent = "Working…";
    } else {
      bar.removeAttribute("value");
      label.textContent = "Waiting in the queue…";
    }
    if (note) label.textContent = "Not started";
    show(prog, !note);
  } else {
    prog.replaceChildren();
    show(prog, false);
  }

  // what tailor made: the category it found, the garment cut-out, the area to repaint
  const catLine = $(".tryon-category", li);
  const catText = categoryText(row);
  if (catLine.textContent !== catText || catLine.hidden === !!catText) setText(catLine, catText);
  renderAssets($(".tryon-assets", li), row);
  if (state.openId === row.id) renderDialogAssets(row);

  if (li.dataset.signature === signature) return li;
  li.dataset.signature = signature;

  // error line
  const errText = note || (status === "failed" ? failureText(row) : "");
  setText($(".tryon-error", li), errText);
  $(".tryon-error", li).title = status === "failed" && row.error ? String(row.error) : "";

  // picture
  const media = $(".tryon-media", li);
  if (status === "done" && row.outfit_try_on) {
    const img = el("img", { alt: `Try-on result from ${formatDate(createdAt(row))}`, loading: "lazy" });
    const open = el("button", { type: "button", class: "tryon-open", "aria-label": "Open the result full size" }, img);
    open.addEventListener("click", () => openResult(row.id));
    media.replaceChildren(open);
    setImageFromKey(img, row.outfit_try_on);
  } else {
    const local = state.previews.get(row.id);
    const ph = el("div", { class: "tryon-placeholder" });
    if (local) ph.append(el("img", { src: local, alt: "", class: "tryon-ghost" }));
    ph.append(el("span", {
      class: "tryon-placeholder-text",
      text: row.result_expired_at ? "Expired" : status === "failed" ? "No result" : status === "done" ? "No picture" : "In progress",
    }));
    media.replaceChildren(ph);
  }

  // actions
  const actions = $(".tryon-actions", li);
  const buttons = [];
  if (status === "done" && row.outfit_try_on) {
    buttons.push(el("button", { type: "button", class: "button-small", text: "Open", onclick: () => openResult(row.id) }));
  }
  if ((status === "done" || status === "failed" || note) && !row.inputs_expired_at) {
    buttons.push(el("button", {
      type: "button", class: "button-small", text: "Try again",
      onclick: (e) => retry(row.id, e.currentTarget),
    }));
  }
  buttons.push(el("button", {
    type: "button", class: "button-small button-quiet", text: "Delete",
    onclick: () => removeTryOn(row.id),
  }));
  actions.replaceChildren(...buttons);
  return li;
}

/** "Category: lower body (detected)" where tailor chose it, the category where it matters, or "". */
function categoryText(row) {
  const run = state.runs.get(row.id);
  const askedAuto = row.category_requested === "auto" || (!!run && run.category === "auto");
  const name = CATEGORY_NAME[row.category];
  if (name) {
    if (askedAuto) return `Category: ${name} (detected)`;
    return row.cleaned_outfit || row.person_mask ? `Category: ${name}` : "";
  }
  const active = row.status === "queued" || row.status === "processing";
  if ((askedAuto || row.category === "auto") && active && !state.notes.get(row.id)) {
    return "Category: auto (finding it…)";
  }
  return "";
}

function assetFigure(caption, kind, media) {
  return el("figure", { class: `asset asset-${kind}` },
    el("div", { class: "asset-frame" }, media),
    el("figcaption", { text: caption }),
  );
}

/**
 * Show `row`'s garment cut-out and area to repaint in `box` (rebuilt only when their keys
 * change). Card thumbnails ask for their links once the card scrolls into view; `large` (the
 * result dialog) at once.
 */
function renderAssets(box, row, { large = false } = {}) {
  const maskKey = row.person_mask || "";
  const keys = [row.cleaned_outfit || "", maskKey, maskKey ? row.user_snap || "" : ""].join("|");
  if (box.dataset.keys === keys) return;
  box.dataset.keys = keys;
  if (box.observer) box.observer.disconnect();
  box.observer = null;
  const when = formatDate(createdAt(row));
  const of = when ? ` (try-on from ${when})` : "";
  const figures = [];
  const loaders = [];
  if (row.cleaned_outfit) {
    const img = el("img", { alt: `The garment cut out of its photo${of}`, decoding: "async" });
    figures.push(assetFigure("Garment cut-out", "cutout", img));
    loaders.push(() => showAssetImage(img, row.cleaned_outfit));
  }
  if (maskKey) {
    const canvas = el("canvas", {
      role: "img", width: "1", height: "1",
      "aria-label": `The person photo with the area the model repaints tinted pink${of}`,
    });
    figures.push(assetFigure(large ? "Area to repaint (in pink)" : "Area to repaint", "mask", canvas));
    loaders.push(() => paintRepaintArea(canvas, row.user_snap, maskKey, large ? 1024 : 320));
  }
  box.replaceChildren(...figures);
  show(box, figures.length > 0);
  if (!figures.length) return;
  const load = () => loaders.forEach((f) => f());
  if (large || typeof IntersectionObserver !== "function") {
    load();
    return;
  }
  const observer = new IntersectionObserver((entries) => {
    if (!entries.some((e) => e.isIntersecting)) return;
    observer.disconnect();
    box.observer = null;
    load();
  }, { rootMargin: "800px 0px" }); // about where Chromium starts loading a lazy <img>
  observer.observe(box);
  box.observer = observer;
}

function assetFailed(node) {
  const frame = node.closest(".asset-frame");
  if (frame) frame.replaceChildren(el("span", { class: "asset-missing", text: "Couldn't load it" }));
}

async function showAssetImage(img, key) {
  let retried = false;
  img.addEventListener("error", async () => {
    if (retried) return assetFailed(img);
    retried = true; // an expired link: ask for a new one once
    try {
      img.src = await downloadUrl(key, true);
    } catch {
      assetFailed(img);
    }
  });
  try {
    img.src = await downloadUrl(key);
  } catch {
    assetFailed(img);
  }
}

/** A decoded picture of the object at `key` (a second, fresh link if the first fails). */
async function loadImage(key) {
  let failure;
  for (const fresh of [false, true]) {
    try {
      const img = new Image();
      img.src = await downloadUrl(key, fresh);
      await img.decode();
      return img;
    } catch (err) {
      failure = err;
    }
  }
  throw failure;
}

/**
 * Draw the person photo with the mask's area (255 = repainted) tinted: person * (1 - a*m) +
 * tint * a*m, by compositing only (no pixel reads, so photos from another origin work too).
 * Where the person photo can't be drawn (HEIC in most browsers), the mask itself is shown.
 */
async function paintRepaintArea(canvas, personKey, maskKey, maxSide) {
  let mask;
  try {
    mask = await loadImage(maskKey);
  } catch {
    assetFailed(canvas);
    return;
  }
  let person = null;
  if (personKey) {
    try {
      person = await loadImage(personKey);
    } catch {
      person = null;
    }
  }
  const maskOnly = () => {
    const img = el("img", { src: mask.src, alt: "The area the model repaints, in white" });
    const fig = canvas.closest(".asset");
    if (fig) {
      $(".asset-frame", fig).classList.add("asset-mask-only");
      const caption = $("figcaption", fig);
      if (caption.textContent.includes("(")) caption.textContent = "Area to repaint (in white)";
    }
    canvas.replaceWith(img);
  };
  if (!person || !person.naturalWidth) return maskOnly();
  try {
    const scale = Math.min(1, maxSide / Math.max(person.naturalWidth, person.naturalHeight));
    const w = Math.max(1, Math.round(person.naturalWidth * scale));
    const h = Math.max(1, Math.round(person.naturalHeight * scale));
    const off = document.createElement("canvas");
    off.width = canvas.width = w;
    off.height = canvas.height = h;
    const ctx = canvas.getContext("2d");
    const o = off.getContext("2d");
    ctx.drawImage(person, 0, 0, w, h);
    // off = 1 - a*m; the photo times that darkens the area
    o.fillStyle = "#fff";
    o.fillRect(0, 0, w, h);
    o.globalCompositeOperation = "difference";
    o.globalAlpha = REPAINT_ALPHA;
    o.drawImage(mask, 0, 0, w, h);
    ctx.globalCompositeOperation = "multiply";
    ctx.drawImage(off, 0, 0);
    // off = tint * m; a times that added colours it
    o.globalCompositeOperation = "copy";
    o.globalAlpha = 1;
    o.drawImage(mask, 0, 0, w, h);
    o.globalCompositeOperation = "multiply";
    o.fillStyle = REPAINT_TINT;
    o.fillRect(0, 0, w, h);
    ctx.globalCompositeOperation = "lighter";
    ctx.globalAlpha = REPAINT_ALPHA;
    ctx.drawImage(off, 0, 0);
    ctx.globalCompositeOperation = "source-over";
    ctx.globalAlpha = 1;
  } catch {
    maskOnly();
  }
}

async function downloadUrl(key, fresh = false) {
  const hit = state.urls.get(key);
  if (!fresh && hit) {
    if (hit.promise) return hit.promise;
    if (Date.now() - hit.at < URL_CACHE_MS) return hit.url;
  }
  const promise = api.presignDownload(key);
  state.urls.set(key, { promise });
  try {
    const url = await promise;
    state.urls.set(key, { url, at: Date.now() });
    return url;
  } catch (err) {
    state.urls.delete(key);
    throw err;
  }
}

async function setImageFromKey(img, key) {
  let retried = false;
  img.addEventListener("error", async () => {
    if (retried) return;
    retried = true; // an expired link: ask for a new one once
    try {
      img.src = await downloadUrl(key, true);
    } catch {
      /* leave the broken image; the alt text says what it was */
    }
  });
  try {
    img.src = await downloadUrl(key);
  } catch (err) {
    const li = img.closest("li");
    if (li) setText($(".tryon-error", li), `Couldn't show the picture: ${plainMessage(err)}`);
  }
}

async function retry(id, button) {
  const row = state.rows.get(id);
  if (!row) return;
  if (button) button.disabled = true;
  // the same settings as its last run from this browser (else the Advanced fields), a new seed
  const run = state.runs.get(id);
  const settings = {};
  let cat = row.category;
  if (run) {
    for (const k of ["steps", "guidance"]) if (run[k] !== undefined) settings[k] = run[k];
    if (run.preset === "fast") settings.preset = "fast";
    if (run.variant === "mask") settings.variant = "mask";
    for (const k of ["model", "garment_photo_type", "segmentation_free"]) if (run[k] !== undefined) settings[k] = run[k];
    if (run.category) cat = run.category;
  } else {
    const advanced = readAdvanced() || {};
    for (const k of ["steps", "guidance"]) if (advanced[k] !== undefined) settings[k] = advanced[k];
    if (row.person_mask || variant() === "mask") settings.variant = "mask";
    Object.assign(settings, fashnParams());
    if (preset() === "fast") settings.preset = "fast";
  }
  const ok = await startJob(row, cat, { ...settings, seed: randomSeed() });
  if (button && button.isConnected) button.disabled = false;
  return ok;
}

async function removeTryOn(id) {
  const ok = await confirmDialog("Delete this try-on?", "The result and its photos will be deleted.", "Delete");
  if (!ok) return false;
  try {
    await api.deleteTryOn(id);
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404)) {
      const li = cardFor(id);
      if (li) setText($(".tryon-error", li), `Couldn't delete: ${plainMessage(err)}`);
      return false;
    }
  }
  const row = state.rows.get(id);
  state.rows.delete(id);
  forgetRun(id);
  // the server deletes the photos no other try-on uses: send them again next time
  if (row) {
    for (const [file, key] of state.uploaded) {
      if (key === row.user_snap || key === row.uncleaned_outfit) state.uploaded.delete(file);
    }
  }
  const local = state.previews.get(id);
  if (local) {
    state.previews.delete(id);
    if (!Object.values(state.pickerPreview).includes(local)) URL.revokeObjectURL(local);
  }
  renderHistory();
  announce("Try-on deleted.");
  $("#history-title").focus();
  return true;
}

// ---------------------------------------------------------------- the result dialog

async function openResult(id) {
  const row = state.rows.get(id);
  if (!row || !row.outfit_try_on) return;
  state.openId = id;
  const dlg = $("#result-dialog");
  const img = $("#result-image");
  const link = $("#result-download");
  setText($("#result-error"), "");
  img.removeAttribute("src");
  img.alt = `Try-on result from ${formatDate(createdAt(row))}, full size`;
  link.href = "#";
  link.setAttribute("download", `proteus-tryon-${id}.png`);
  delete $("#result-asset-list").dataset.keys;
  renderDialogAssets(row);
  if (!dlg.open) dlg.showModal();
  try {
    const url = await downloadUrl(row.outfit_try_on);
    img.src = url;
    link.href = url;
    // another origin ignores `download`: open the picture in a new tab instead of leaving
    if (new URL(url, location.href).origin !== location.origin) link.target = "_blank";
    else link.removeAttribute("target");
  } catch (err) {
    setText($("#result-error"), `Couldn't load the picture: ${plainMessage(err)}`);
  }
}

/** The category line and the cut-out / area to repaint in the result dialog. */
function renderDialogAssets(row) {
  const text = categoryText(row);
  setText($("#result-category"), text);
  const list = $("#result-asset-list");
  renderAssets(list, row, { large: true });
  show($("#result-assets"), !!text || !list.hidden);
}

function wireDialogs() {
  const dlg = $("#result-dialog");
  dlg.querySelectorAll("[data-close]").forEach((b) => b.addEventListener("click", () => dlg.close()));
  dlg.addEventListener("click", (e) => {
    if (e.target === dlg) dlg.close(); // a click on the backdrop
  });
  dlg.addEventListener("close", () => {
    const id = state.openId;
    state.openId = null;
    const li = id && cardFor(id);
    const target = li && (li.querySelector(".tryon-open") || li.querySelector("button"));
    if (target) target.focus();
    else if (state.user) $("#history-title").focus();
  });
  $("#result-download").addEventListener("click", (e) => {
    if ($("#result-download").getAttribute("href") === "#") e.preventDefault();
  });
  $("#result-retry").addEventListener("click", async () => {
    const id = state.openId;
    dlg.close();
    if (id) await retry(id);
  });
  $("#result-delete").addEventListener("click", async () => {
    const id = state.openId;
    if (!id) return;
    const deleted = await removeTryOn(id);
    if (deleted && dlg.open) {
      state.openId = null;
      dlg.close();
    }
  });
}

// ---------------------------------------------------------------- start

function main() {
  wireAuth();
  wireApiKeys();
  wirePickers();
  wireCreate();
  wireModelChoice();
  wireDialogs();
  $("#load-more").addEventListener("click", loadOlder);
  window.addEventListener("hashchange", () => route());
  boot();
}

main();

// For tests and debugging in the console: read-only peeks at the page's state.
window.proteus = Object.freeze({
  get liveState() {
    return state.live ? state.live.state : "stopped";
  },
  get lastEventId() {
    return state.live ? state.live.lastEventId : null;
  },
});
