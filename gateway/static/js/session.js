// The session: which view shows (routing by the location hash), entering the app after a login
// (history and the live connection) and leaving it, and what /health says (smoke mode, limits).
import { api, ApiError, onUnauthorized, plainMessage } from "./api.js";
import { $, setText, show } from "./dom.js";
import { loadRuns, state } from "./state.js";
import { LiveConnection } from "./live.js";
import { fillAccount } from "./auth.js";
import { resetCreateForm } from "./create.js";
import { handleLiveMessage, loadHistory, showLiveState } from "./history.js";

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

export function route(focus = true) {
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

export async function enterApp(user, focus = true) {
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

export function leaveApp(notice) {
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

/** A 401 from any authenticated call sends the page back to the login form. */
export function watchSession() {
  onUnauthorized(() => {
    if (state.user) leaveApp("Your session ended. Please log in again.");
  });
}

let healthTimer = null;

/** Read /health: the smoke banner and the upload limit. Asks again while no model has loaded yet. */
export function refreshHealth() {
  clearTimeout(healthTimer);
  api.health().then((health) => {
    applyHealth(health);
    const weave = health && health.models && health.models.weave;
    if (!weave) healthTimer = setTimeout(refreshHealth, 10_000);
  }).catch(() => {
    healthTimer = setTimeout(refreshHealth, 30_000);
  });
}

export async function boot() {
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

