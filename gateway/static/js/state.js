// The page's state, and the settings each try-on last ran with from this browser (kept in
// localStorage per user, so "Try again" repeats them after a reload).
const RUNS_KEY = "proteus.runs.v1."; // + user id
const MAX_RUNS = 200;

export const state = {
  user: null,
  maxBytes: null, // the server's upload limit, from /health
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
  openKey: null, // which of its samples the dialog shows
};

export function createdAt(row) {
  return row.createdAt || row.created_at || "";
}

/** Run fn(localStorage); null where storage is off (private mode, a full quota). */
export function storageDo(fn) {
  try {
    return fn(window.localStorage);
  } catch {
    return null;
  }
}

export function runsKey() {
  return state.user && state.user.id ? RUNS_KEY + state.user.id : null;
}

export function loadRuns() {
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

export function rememberRun(id, run) {
  state.runs.delete(id);
  state.runs.set(id, run);
  saveRuns();
}

export function forgetRun(id) {
  if (state.runs.delete(id)) saveRuns();
}
