// Pictures from storage: short-lived download links (cached), the result and sample images,
// and what tailor made (the garment cut-out, the area to repaint drawn over the person photo).
import { api, plainMessage } from "./api.js";
import { $, el, formatDate, setText, show } from "./dom.js";
import { createdAt, state } from "./state.js";

const URL_CACHE_MS = 10 * 60 * 1000;
// "Area to repaint": the person photo with the mask's area tinted this colour, this strongly.
const REPAINT_TINT = "rgb(255 0 150)";
const REPAINT_ALPHA = 0.55;

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
export function renderAssets(box, row, { large = false } = {}) {
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

export async function downloadUrl(key, fresh = false) {
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

export async function setImageFromKey(img, key) {
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

