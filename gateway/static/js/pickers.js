// Picking the two photos (file input or drag and drop), their previews, and uploading them
// straight to storage with progress.
import { api, plainMessage } from "./api.js";
import { $, announce, el, fieldError, show } from "./dom.js";
import { state } from "./state.js";
import { checkFile, fileType, sendToStorage } from "./upload.js";

export const ROLES = ["person", "garment"];


export function wirePickers() {
  state.emptyPreview = {};
  for (const role of ROLES) {
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

export function pick(role, file) {
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

export function renderPickerPreview(role, file) {
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

export function hideProgress(role) {
  show($(`[data-progress="${role}"]`), false);
}

export async function uploadPicked(role) {
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

/** The next person on this browser starts with no photos picked. */
export function resetPickers() {
  for (const role of ROLES) {
    state.files[role] = null;
    renderPickerPreview(role, null);
    hideProgress(role);
  }
}
