// The try-on settings of the form: the category chips, Quality, and the Advanced fields (steps,
// guidance, seed, samples, model). Which values exist and their limits come from the server's
// contract (contract.js); this module only words them.
import { $, el, fieldError } from "./dom.js";
import { contract } from "./contract.js";

// "auto" asks tailor to classify the garment (the contract's own meaning of the value).
export const AUTO = "auto";
// Words for the values the server lists; a value missing here is shown as itself.
const CATEGORY_WORDS = { auto: "Auto", upper: "Upper body", lower: "Lower body", overall: "Full outfit" };
// The numeric fields: contract name -> the input's id.
const NUMBERS = { steps: "#opt-steps", guidance: "#opt-guidance", seed: "#opt-seed", num_samples: "#opt-samples" };

/** The category in words for a card ("lower body"), or "" for none / auto. */
export function categoryWords(value) {
  if (!value || value === AUTO) return "";
  return (CATEGORY_WORDS[value] || value).toLowerCase();
}

function categoryChip(value, checked) {
  const input = el("input", { type: "radio", name: "category", value, checked });
  return el("label", { class: "chip" }, input, ` ${CATEGORY_WORDS[value] || value}`);
}

/** Set the form's choices and limits from the contract (once, at start). */
export async function applyContract() {
  const c = await contract();
  const chips = $("#category-chips");
  if (c.categories.length) {
    const checked = c.defaultCategory || c.categories[0];
    // the default first, as the page has always offered it
    const order = [...c.categories].sort((a, b) => (b === checked) - (a === checked));
    chips.replaceChildren(chips.querySelector("legend"), ...order.map((v) => categoryChip(v, v === checked)));
  }
  for (const [name, sel] of Object.entries(NUMBERS)) {
    const r = c.ranges[name];
    const input = $(sel);
    if (!r) continue;
    if (r.min !== undefined) input.min = String(r.min);
    if (r.max !== undefined) input.max = String(r.max);
    const span = document.querySelector(`[data-range="${name}"]`);
    if (span && r.min !== undefined && r.max !== undefined) span.textContent = ` (${r.min}–${r.max})`;
  }
  // the model choices and photo types the server takes (the page words each one in its HTML)
  const known = new Set([...c.variants, ...c.models]);
  for (const input of document.querySelectorAll('input[name="variant"]')) {
    if (known.size && !known.has(input.value)) input.closest("label").hidden = true;
  }
  for (const option of $("#opt-photo-type").options) {
    if (c.photoTypes.length && !c.photoTypes.includes(option.value)) option.remove();
  }
  for (const input of document.querySelectorAll('input[name="preset"]')) {
    if (c.presets.length && !c.presets.includes(input.value)) input.closest("label").hidden = true;
  }
  for (const span of document.querySelectorAll("[data-model-steps]")) {
    const info = c.modelInfo[span.dataset.modelSteps];
    if (info && info.presets) span.textContent = `, ${info.presets.default} steps`;
  }
  wordPresets(c);
  for (const input of document.querySelectorAll('input[name="variant"]')) {
    input.addEventListener("change", () => wordPresets(c));
  }
}

/** The model the Advanced choice runs (a FASHN choice names it; a CatVTON variant means one). */
function chosenModel(c) {
  return fashnParams().model || c.variantModels[variant()] || null;
}

/** Quality's choices say how many steps each runs with the chosen model ("Best (50 steps)"). */
function wordPresets(c) {
  const info = c.modelInfo[chosenModel(c)];
  for (const span of document.querySelectorAll("[data-preset-steps]")) {
    const steps = info && info.presets ? info.presets[span.dataset.presetSteps] : undefined;
    span.textContent = steps === undefined ? "" : ` (${steps} steps)`;
  }
}

/** The Advanced numbers as {steps, guidance, seed, num_samples} (left-out ones absent), or null after marking what is wrong. */
export async function readAdvanced() {
  const { ranges } = await contract();
  const out = {};
  let ok = true;
  for (const [name, sel] of Object.entries(NUMBERS)) {
    const input = $(sel);
    const errorEl = $(`${sel}-error`);
    const raw = input.value.trim();
    if (!raw && input.validity.badInput) {
      fieldError(input, errorEl, "Enter a number.");
      ok = false;
      continue;
    }
    if (!raw) continue;
    const n = Number(raw);
    const r = ranges[name] || { integer: false };
    const below = r.min !== undefined && n < r.min;
    const above = r.max !== undefined && n > r.max;
    if (!Number.isFinite(n) || (r.integer && !Number.isInteger(n)) || below || above) {
      const kind = r.integer ? "a whole number" : "a number";
      const span = r.min !== undefined && r.max !== undefined ? ` from ${r.min} to ${r.max}` : "";
      fieldError(input, errorEl, `Enter ${kind}${span}.`);
      ok = false;
      continue;
    }
    out[name] = n;
  }
  if (!ok) $(".advanced").open = true;
  return ok ? out : null;
}

/** Clear the Advanced fields' error lines. */
export function clearAdvancedErrors() {
  for (const sel of Object.values(NUMBERS)) fieldError($(sel), $(`${sel}-error`), "");
}

export function category() {
  const c = document.querySelector('input[name="category"]:checked');
  return c ? c.value : AUTO;
}

/** "default" or "fast" from the Quality choice. */
export function preset() {
  const p = document.querySelector('input[name="preset"]:checked');
  return p && p.value === "fast" ? "fast" : "default";
}

/** "mask" or "maskfree" (the default) from the Advanced choice ("maskfree" when FASHN is chosen). */
export function variant() {
  const v = document.querySelector('input[name="variant"]:checked');
  return v && v.value === "mask" ? "mask" : "maskfree";
}

/** The FASHN VTON request fields when that model (a choice marked data-model) is chosen in Advanced, else {}. */
export function fashnParams() {
  const v = document.querySelector('input[name="variant"]:checked');
  if (!v || !("model" in v.dataset)) return {};
  return {
    model: v.value,
    garment_photo_type: $("#opt-photo-type").value,
    segmentation_free: $("#opt-segmentation-free").checked,
  };
}

export function wireModelChoice() {
  const options = $("#fashn-options");
  if (!options) return;
  for (const input of document.querySelectorAll('input[name="variant"]')) {
    input.addEventListener("change", () => {
      options.hidden = !fashnParams().model;
    });
  }
}
