// The result dialog: one sample full size (a row of buttons picks another where the try-on
// made several), its download, what tailor made, and Try again / Delete.
import { plainMessage } from "./api.js";
import { $, el, formatDate, setText, show } from "./dom.js";
import { createdAt, state } from "./state.js";
import { downloadUrl, renderAssets } from "./assets.js";
import { cardFor, categoryText, samplesOf } from "./card.js";
import { retry } from "./create.js";
import { removeTryOn } from "./history.js";

/** The download's file name: the try-on id, the sample's number where there are several, the key's extension. */
function fileName(id, key, index, count) {
  const m = /\.([a-z0-9]+)$/i.exec(key);
  return `proteus-tryon-${id}${count > 1 ? `-${index + 1}` : ""}.${m ? m[1].toLowerCase() : "png"}`;
}

function renderSampleChoice(row, samples, index) {
  const list = $("#result-samples");
  list.replaceChildren(...(samples.length < 2 ? [] : samples.map((key, i) => el("li", {},
    el("button", {
      type: "button", class: "button-small", text: `Sample ${i + 1}`,
      "aria-pressed": i === index ? "true" : "false",
      onclick: () => openResult(row.id, key),
    }),
  ))));
  show(list, samples.length > 1);
}

/** Show try-on `id` full size: sample `key` (the first where left out). */
export async function openResult(id, key = null) {
  const row = state.rows.get(id);
  const samples = row ? samplesOf(row) : [];
  if (!samples.length) return;
  const index = Math.max(0, samples.indexOf(key));
  const shown = samples[index];
  state.openId = id;
  state.openKey = shown;
  const dlg = $("#result-dialog");
  const img = $("#result-image");
  const link = $("#result-download");
  setText($("#result-error"), "");
  img.removeAttribute("src");
  const which = samples.length > 1 ? `, sample ${index + 1} of ${samples.length}` : "";
  img.alt = `Try-on result from ${formatDate(createdAt(row))}${which}, full size`;
  link.href = "#";
  link.setAttribute("download", fileName(id, shown, index, samples.length));
  renderSampleChoice(row, samples, index);
  delete $("#result-asset-list").dataset.keys;
  renderDialogAssets(row);
  if (!dlg.open) dlg.showModal();
  try {
    const url = await downloadUrl(shown);
    if (state.openKey !== shown) return; // another sample was chosen meanwhile
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
export function renderDialogAssets(row) {
  const text = categoryText(row);
  setText($("#result-category"), text);
  const list = $("#result-asset-list");
  renderAssets(list, row, { large: true });
  show($("#result-assets"), !!text || !list.hidden);
}

export function wireDialogs() {
  const dlg = $("#result-dialog");
  dlg.querySelectorAll("[data-close]").forEach((b) => b.addEventListener("click", () => dlg.close()));
  dlg.addEventListener("click", (e) => {
    if (e.target === dlg) dlg.close(); // a click on the backdrop
  });
  dlg.addEventListener("close", () => {
    const id = state.openId;
    state.openId = null;
    state.openKey = null;
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
