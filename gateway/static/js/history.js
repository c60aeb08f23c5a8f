// The history of try-ons: the newest page and older ones from the server, merged with what
// the live connection pushes (progress, completion with every sample), and deleting one.
import { api, ApiError, plainMessage } from "./api.js";
import { $, announce, confirmDialog, setText } from "./dom.js";
import { createdAt, forgetRun, state } from "./state.js";
import { cardFor, failureText, renderCard, renderHistory } from "./card.js";

const PAGE_SIZE = 24;

export function upsertRow(row) {
  if (!row || !row.id) return;
  const old = state.rows.get(row.id);
  state.rows.set(row.id, old ? Object.assign(old, row) : { ...row });
}

export function sortedRows() {
  return [...state.rows.values()].sort((a, b) => {
    const d = String(createdAt(b)).localeCompare(String(createdAt(a)));
    return d || String(b.id).localeCompare(String(a.id));
  });
}

let loading = null;
let loadAgain = false;

/** Fetch the newest page and merge it in (rows gone from the server's newest page are dropped). */
export async function loadHistory() {
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

export async function loadOlder() {
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

export function scheduleRefetch(ms = 150) {
  clearTimeout(state.refetchTimer);
  state.refetchTimer = setTimeout(() => loadHistory(), ms);
}

export function handleLiveMessage(msg) {
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
        if (msg.result_s3_key) {
          row.outfit_try_on = msg.result_s3_key;
          // every sample (the original message's single key is the first)
          const keys = Array.isArray(msg.result_keys) ? msg.result_keys : [];
          row.result_keys = keys.length ? keys : [msg.result_s3_key];
        }
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

export function showLiveState(s) {
  const p = $("#live-status");
  p.dataset.state = s;
  p.textContent = {
    connecting: "Connecting…",
    open: "Live updates on",
    reconnecting: "Connection lost. Reconnecting…",
    offline: "You are offline. Updates resume when you're back.",
  }[s] || s;
}


export async function removeTryOn(id) {
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

