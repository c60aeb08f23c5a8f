// Starting a try-on: check the form, upload both photos, record the try-on, then start its
// job with the chosen settings; "Try again" starts it anew with the same settings.
import { api, plainMessage, randomSeed } from "./api.js";
import { $, announce, clearFieldErrors, fieldError, setText } from "./dom.js";
import { rememberRun, state } from "./state.js";
import { checkFile } from "./upload.js";
import { hideProgress, resetPickers, ROLES, uploadPicked } from "./pickers.js";
import { AUTO, category, clearAdvancedErrors, fashnParams, preset, readAdvanced, variant } from "./advanced.js";
import { renderCard, renderHistory } from "./card.js";
import { scheduleRefetch, upsertRow } from "./history.js";

// The settings "Try again" repeats (besides the category and variant).
const KEPT = ["steps", "guidance", "num_samples", "preset", "model", "garment_photo_type", "segmentation_free"];

/** The next person on this browser starts from an empty form. */
export function resetCreateForm() {
  const form = $("#create-form");
  form.reset();
  resetPickers();
  clearFieldErrors(form);
  $("#create-status").textContent = "";
  $(".advanced").open = false;
}

export function wireCreate() {
  const form = $("#create-form");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    setText($("#create-error"), "");
    clearAdvancedErrors();
    let ok = true;
    for (const role of ROLES) {
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
    const advanced = await readAdvanced();
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
      if (cat !== AUTO) body.category = cat;
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
      for (const role of ROLES) hideProgress(role);
    } finally {
      submit.disabled = false;
    }
  });
}

/**
 * POST /jobs/weaver for a try-on row; returns true when the job was queued. `cat` is sent as
 * asked ("auto" too: the row's own category may be the one tailor found last time).
 */
export async function startJob(row, cat, params = {}) {
  const body = { vton_id: row.id, user_snap_s3: row.user_snap, uncleaned_outfit_s3: row.uncleaned_outfit };
  if (cat) body.category = cat;
  Object.assign(body, params);
  const kept = { category: cat || AUTO, variant: params.variant === "mask" ? "mask" : "maskfree" };
  for (const k of KEPT) {
    if (params[k] !== undefined) kept[k] = params[k];
  }
  rememberRun(row.id, kept);
  state.notes.delete(row.id);
  try {
    await api.startWeave(body);
    Object.assign(row, {
      status: "queued", error: null, progress: null, progress_step: null, progress_steps: null,
      outfit_try_on: null, result_keys: null,
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

/** Start a try-on again: the same settings as its last run from this browser, a new seed. */
export async function retry(id, button) {
  const row = state.rows.get(id);
  if (!row) return;
  if (button) button.disabled = true;
  // the same settings as its last run from this browser (else the Advanced fields), a new seed
  const run = state.runs.get(id);
  const settings = {};
  let cat = row.category;
  if (run) {
    for (const k of ["steps", "guidance", "num_samples"]) if (run[k] !== undefined) settings[k] = run[k];
    if (run.preset === "fast") settings.preset = "fast";
    if (run.variant === "mask") settings.variant = "mask";
    for (const k of ["model", "garment_photo_type", "segmentation_free"]) if (run[k] !== undefined) settings[k] = run[k];
    if (run.category) cat = run.category;
  } else {
    const advanced = (await readAdvanced()) || {};
    for (const k of ["steps", "guidance", "num_samples"]) if (advanced[k] !== undefined) settings[k] = advanced[k];
    if (row.person_mask || variant() === "mask") settings.variant = "mask";
    Object.assign(settings, fashnParams());
    if (preset() === "fast") settings.preset = "fast";
  }
  const ok = await startJob(row, cat, { ...settings, seed: randomSeed() });
  if (button && button.isConnected) button.disabled = false;
  return ok;
}

