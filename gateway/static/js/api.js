// The gateway's REST API, same origin. Every failure becomes an ApiError with the HTTP status
// (0 when the server could not be reached) and the JSON error body {error, message, code, field}.

export class ApiError extends Error {
  constructor(status, body, message) {
    super(message || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.body = body || null;
    this.code = body && typeof body === "object" ? body.code || null : null;
    this.field = body && typeof body === "object" ? body.field || null : null;
    this.serverMessage = body && typeof body === "object" ? body.message || body.error || null : null;
    this.retryAfter = null;
  }
}

// The session is the HttpOnly `token` cookie the login sets: no token is kept in page script.
let unauthorizedHandler = null;

/** Called with the ApiError when an authenticated request answers 401. */
export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

function parseBody(text) {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

async function request(method, path, { json, headers = {}, auth = true } = {}) {
  const init = {
    method,
    credentials: "same-origin",
    headers: { Accept: "application/json", ...headers },
  };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, null, "network");
  }
  const body = parseBody(await res.text());
  if (!res.ok) {
    const err = new ApiError(res.status, body, (body && (body.message || body.error)) || res.statusText);
    err.retryAfter = Number(res.headers.get("Retry-After")) || null;
    if (res.status === 401 && auth && unauthorizedHandler) unauthorizedHandler(err);
    throw err;
  }
  return body;
}

/** A random id: crypto.randomUUID where the page is a secure context, else from getRandomValues. */
export function randomId() {
  if (globalThis.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** A random seed in 0..2^31-1. */
export function randomSeed() {
  return crypto.getRandomValues(new Uint32Array(1))[0] & 0x7fffffff;
}

export const api = {
  health: () => request("GET", "/health", { auth: false }),
  openapi: () => request("GET", "/openapi.json", { auth: false }),

  signup: (user_name, email, password) =>
    request("POST", "/user/signup", { json: { user_name, email, password }, auth: false }),
  login: (email, password) => request("POST", "/user/login", { json: { email, password }, auth: false }),
  logout: () => request("POST", "/user/logout", { auth: false }),
  me: () => request("GET", "/user", { auth: false }),
  deleteAccount: () => request("DELETE", "/user"),
  listApiKeys: async () => (await request("GET", "/api-keys")).keys,
  createApiKey: (name) => request("POST", "/api-keys", { json: name ? { name } : {} }),
  revokeApiKey: (id) => request("DELETE", `/api-keys/${encodeURIComponent(id)}`),
  webhookSettings: () => request("GET", "/webhook-settings"),
  rotateWebhookSecret: () => request("POST", "/webhook-settings/rotate-secret"),
  wsToken: async () => (await request("GET", "/user/ws-token")).token,

  presignUpload: (fileName, fileType, fileSize) =>
    request("POST", "/images/presignedUploadUrl", { json: { fileName, fileType, fileSize } }),
  presignDownload: async (key) => (await request("POST", "/images/presignedDownloadUrl", { json: { key } })).url,

  listTryOns: (limit, before) => {
    const q = new URLSearchParams({ limit: String(limit) });
    if (before) q.set("before", before);
    return request("GET", `/vton?${q}`);
  },
  createTryOn: (body) => request("POST", "/vton", { json: body }),
  deleteTryOn: (id) => request("DELETE", `/vton/${encodeURIComponent(id)}`),

  startWeave: (body) =>
    request("POST", "/jobs/weaver", { json: body, headers: { "Idempotency-Key": randomId() } }),
  job: (id) => request("GET", `/jobs/${encodeURIComponent(id)}`),
};

/**
 * The error in plain words. `context` is "upload" where a file was involved, so that 400/415
 * answers about the bytes read as "not an image"; maxBytes is the upload limit for 413 (null: unknown).
 */
export function plainMessage(err, { context = "", maxBytes = null } = {}) {
  if (!(err instanceof ApiError)) return "Something went wrong in this page. Reload it and try again.";
  const mb = Number.isFinite(maxBytes) ? Math.round((maxBytes / (1024 * 1024)) * 10) / 10 : null;
  switch (err.status) {
    case 0:
      return "Can't reach the server. Check your connection and try again.";
    case 401:
      return "Please log in again.";
    case 403:
      return context === "upload"
        ? "The upload link was refused or has expired. Try again."
        : "You are not allowed to do that.";
    case 404:
      return "It's not there any more (maybe deleted). Reload the list.";
    case 413:
      return mb === null ? "File too big." : `File too big (max ${mb} MB).`;
    case 415:
      return "Not an image we can read.";
    case 429:
      return "Too many requests, try again in a moment.";
    default:
      break;
  }
  if (err.status === 400 && (err.code === "invalid_image" || err.code === "unsupported_media_type" ||
      (context === "upload" && (err.field === "fileType" || err.field === "file" || !err.serverMessage)))) {
    return "Not an image we can read.";
  }
  if (err.status >= 400 && err.status < 500 && err.serverMessage) return err.serverMessage;
  if (err.status === 503) return "A part of the service is unavailable right now. Try again in a moment.";
  return `Something went wrong on the server (error ${err.status}). Try again.`;
}
