// One history card per try-on: status, progress, the model and seed, every sample it made,
// what tailor made, and its actions (open, try again, delete).
import { $, el, formatDate, setText, show } from "./dom.js";
import { createdAt, state } from "./state.js";
import { renderAssets, setImageFromKey } from "./assets.js";
import { AUTO, categoryWords } from "./advanced.js";
import { openResult, renderDialogAssets } from "./dialog.js";
import { retry } from "./create.js";
import { removeTryOn, sortedRows } from "./history.js";

/** Why a try-on failed, in plain words (the server's own words where there is no plainer way). */
export function failureText(row) {
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

export function renderHistory() {
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

export function cardFor(id) {
  return document.querySelector(`#history-list > li[data-id="${CSS.escape(String(id))}"]`);
}

/** Build or update one card in place. Returns the <li>. */
export function renderCard(row) {
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
        el("ul", { class: "tryon-samples", hidden: true, "aria-label": "Every sample of this try-on" }),
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
  const samples = samplesOf(row);
  const signature = `${status}|${samples.join(",")}|${row.error || ""}|${note || ""}|${row.result_expired_at || ""}|${row.inputs_expired_at || ""}`;
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
  if (status === "done" && samples.length) {
    const img = el("img", { alt: `Try-on result from ${formatDate(createdAt(row))}`, loading: "lazy" });
    const open = el("button", { type: "button", class: "tryon-open", "aria-label": "Open the result full size" }, img);
    open.addEventListener("click", () => openResult(row.id));
    media.replaceChildren(open);
    setImageFromKey(img, samples[0]);
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
  renderSamples($(".tryon-samples", li), row, status === "done" ? samples : []);

  // actions
  const actions = $(".tryon-actions", li);
  const buttons = [];
  if (status === "done" && samples.length) {
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
export function categoryText(row) {
  const run = state.runs.get(row.id);
  const askedAuto = row.category_requested === AUTO || (!!run && run.category === AUTO);
  const name = categoryWords(row.category);
  if (name) {
    if (askedAuto) return `Category: ${name} (detected)`;
    return row.cleaned_outfit || row.person_mask ? `Category: ${name}` : "";
  }
  const active = row.status === "queued" || row.status === "processing";
  if ((askedAuto || row.category === AUTO) && active && !state.notes.get(row.id)) {
    return "Category: auto (finding it…)";
  }
  return "";
}

/** Every sample's result key (the first is outfit_try_on), [] before there is a result. */
export function samplesOf(row) {
  if (!row.outfit_try_on) return [];
  const keys = Array.isArray(row.result_keys) ? row.result_keys.filter(Boolean) : [];
  return keys.length && keys[0] === row.outfit_try_on ? keys : [row.outfit_try_on];
}

/** Thumbnails of every sample, each opening it in the result dialog. */
function renderSamples(box, row, samples) {
  if (samples.length < 2) {
    box.replaceChildren();
    show(box, false);
    return;
  }
  const when = formatDate(createdAt(row));
  box.replaceChildren(...samples.map((key, i) => {
    const img = el("img", { alt: "", loading: "lazy", decoding: "async" });
    const label = `Open sample ${i + 1} of ${samples.length}${when ? ` (try-on from ${when})` : ""}`;
    const button = el("button", { type: "button", class: "sample-open", "aria-label": label, onclick: () => openResult(row.id, key) }, img);
    setImageFromKey(img, key);
    return el("li", { class: "sample", "data-key": key }, button);
  }));
  show(box, true);
}
