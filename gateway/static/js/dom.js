// Small DOM helpers every part of the page uses: finding, building, showing, field errors,
// announcements for screen readers, dates and the "Are you sure?" dialog.

export const $ = (sel, root = document) => root.querySelector(sel);

export function show(node, on = true) {
  node.hidden = !on;
}

export function setText(node, text) {
  node.textContent = text || "";
  node.hidden = !text;
}

export function announce(text) {
  const a = $("#announcer");
  a.textContent = "";
  setTimeout(() => (a.textContent = text), 50);
}

export function el(tag, attrs = {}, ...children) {
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

export function formatDate(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  return new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" }).format(d);
}

export function clearFieldErrors(form) {
  form.querySelectorAll(".field-error, .form-error").forEach((p) => setText(p, ""));
  form.querySelectorAll("[aria-invalid]").forEach((i) => i.removeAttribute("aria-invalid"));
}

export function fieldError(input, errorEl, text) {
  setText(errorEl, text);
  if (text) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
}

/** Ask before something that can't be undone; resolves true when confirmed. */
export function confirmDialog(title, text, okLabel) {
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
