// Picking files and sending them straight to storage with the presigned request.
import { ApiError } from "./api.js";

const EXTENSION_TYPES = { heic: "image/heic", heif: "image/heif", avif: "image/avif" };
const GUESSED_TYPES = {
  ...EXTENSION_TYPES,
  jpg: "image/jpeg", jpeg: "image/jpeg", png: "image/png", webp: "image/webp", gif: "image/gif",
  bmp: "image/bmp", tif: "image/tiff", tiff: "image/tiff",
};
// Headers a browser will not let a page set; a presigned answer may still list them.
const FORBIDDEN_HEADERS = new Set(["content-length", "host", "connection", "expect", "accept-encoding"]);

function extension(name) {
  const m = /\.([a-z0-9]+)$/i.exec(name || "");
  return m ? m[1].toLowerCase() : "";
}

/** The file's MIME type, guessed from its name where the browser leaves it empty (HEIC often). */
export function fileType(file) {
  if (file.type) return file.type;
  return GUESSED_TYPES[extension(file.name)] || "application/octet-stream";
}

/**
 * A plain-words reason the file can't be used, or null: an image type (or HEIC/HEIF/AVIF name),
 * within the size limit (the server's MAX_UPLOAD_BYTES from /health; null before it is known).
 */
export function checkFile(file, maxBytes = null) {
  const isImage = (file.type || "").startsWith("image/") || extension(file.name) in EXTENSION_TYPES;
  if (!isImage) return "Not an image we can read. Choose a photo (JPEG, PNG, WebP, HEIC, AVIF…).";
  if (Number.isFinite(maxBytes) && file.size > maxBytes) {
    const mb = Math.round((maxBytes / (1024 * 1024)) * 10) / 10;
    return `File too big (max ${mb} MB). This one is ${(file.size / (1024 * 1024)).toFixed(1)} MB.`;
  }
  if (file.size === 0) return "This file is empty. Choose another photo.";
  return null;
}

/**
 * Send `file` as the presigned answer says: PUT the bytes with its headers, or POST a multipart
 * form with its fields and then the file. onProgress gets a fraction 0..1.
 * Returns a promise and sets `promise.abort`.
 */
export function sendToStorage(signed, file, onProgress = () => {}) {
  const xhr = new XMLHttpRequest();
  const method = (signed.method || "PUT").toUpperCase();
  const promise = new Promise((resolve, reject) => {
    xhr.open(method, signed.url);
    let body;
    if (method === "POST") {
      body = new FormData();
      for (const [k, v] of Object.entries(signed.fields || {})) body.append(k, v);
      body.append("file", file);
    } else {
      body = file;
      for (const [k, v] of Object.entries(signed.headers || {})) {
        if (!FORBIDDEN_HEADERS.has(k.toLowerCase())) xhr.setRequestHeader(k, v);
      }
    }
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable && e.total > 0) onProgress(e.loaded / e.total);
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(1);
        resolve();
        return;
      }
      let data = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch {
        data = null; // S3 answers XML; the status says enough
      }
      reject(new ApiError(xhr.status, data, (data && (data.message || data.error)) || xhr.statusText));
    };
    xhr.onerror = () => reject(new ApiError(0, null, "network"));
    xhr.onabort = () => reject(new ApiError(0, null, "aborted"));
    xhr.send(body);
  });
  promise.abort = () => xhr.abort();
  return promise;
}
