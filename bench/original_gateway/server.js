// A small replica of the original Proteus gateway (Node.js, Express, `ws`, PostgreSQL, JWT
// cookie auth, Redis pub/sub), limited to the two paths that issue 16 benchmarks:
//
//   GET /vton  the caller's try-ons, newest first, as a JSON array (one query);
//   WS  /ws    job notifications from the Redis channel, pushed to the sockets of their user.
//
// It is the baseline that bench/gateway_rest.py and bench/gateway_ws.py --original measure
// beside our gateway in the same run (see README.md). Configured by the environment:
//
//   PORT              where to listen, on every address (default 8080)
//   DATABASE_URL      PostgreSQL (postgresql://...); anything else: GET /vton answers 503
//   JWT_SECRET        the HS256 secret our gateway signs with
//   REDIS_URL         redis://...
//   REDIS_KEY_PREFIX  prepended to the channel name, as shared/routing.py prefixed() does
//   WS_HEARTBEAT_S    seconds between pings (default 25, our gateway's default)
//
// Plain CommonJS: `node server.js`, no build step.
"use strict";

const http = require("http");
const express = require("express");
const cookieParser = require("cookie-parser");
const jwt = require("jsonwebtoken");
const { Pool } = require("pg");
const { WebSocketServer, WebSocket } = require("ws");
const { createClient } = require("redis");

const PORT = Number(process.env.PORT || 8080);
const JWT_SECRET = process.env.JWT_SECRET || "";
const REDIS_URL = process.env.REDIS_URL || "redis://127.0.0.1:6379/0";
const PREFIX = process.env.REDIS_KEY_PREFIX || "";
const HEARTBEAT_MS = Number(process.env.WS_HEARTBEAT_S || 25) * 1000;
// shared/routing.py NOTIFICATION_CHANNEL (the original's name), with the deployment's prefix.
const CHANNEL = `${PREFIX}events:job_done`;

if (!JWT_SECRET) throw new Error("JWT_SECRET is required");

// -- database -------------------------------------------------------------------------------
// SQLAlchemy spells a driver into the URL ("postgresql+psycopg://"); pg wants "postgresql://".
const databaseUrl = (process.env.DATABASE_URL || "").replace(/^postgres(ql)?\+\w+:/, "postgresql:");
const pool = /^postgres(ql)?:/.test(databaseUrl) ? new Pool({ connectionString: databaseUrl, max: 32 }) : null;

// The columns of table `vtons` (shared/db/models.py TryOn); timestamps are timestamptz.
const HISTORY_SQL = `SELECT id, user_id, user_snap, uncleaned_outfit, cleaned_outfit, outfit_try_on,
  person_mask, category, category_requested, status, error, progress_step, progress_steps,
  result_expired_at, inputs_expired_at, created_at, updated_at
  FROM vtons WHERE user_id = $1 ORDER BY created_at DESC, id DESC`;

// One row with the keys our gateway answers (gateway/serializers.py tryon_to_dict). Our
// gateway reads `model`, `seed` and `result_keys` from the try-on's newest job (a second
// query); the replica derives them from the row alone (no job: null, null, the one result).
// Dates serialize as JavaScript writes them, as our iso() does (milliseconds and a Z).
function tryonToJson(r) {
  let progress = null;
  if (r.progress_steps) progress = Math.max(0, Math.min(1, (r.progress_step || 0) / r.progress_steps));
  else if (r.status === "done") progress = 1;
  return {
    id: r.id,
    user_id: r.user_id,
    user_snap: r.user_snap,
    uncleaned_outfit: r.uncleaned_outfit,
    cleaned_outfit: r.cleaned_outfit,
    outfit_try_on: r.outfit_try_on,
    person_mask: r.person_mask,
    category: r.category,
    category_requested: r.category_requested,
    status: r.status,
    error: r.error,
    progress,
    progress_step: r.progress_step,
    progress_steps: r.progress_steps,
    result_expired_at: r.result_expired_at,
    inputs_expired_at: r.inputs_expired_at,
    model: null,
    seed: null,
    result_keys: r.outfit_try_on ? [r.outfit_try_on] : [],
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

// -- auth -----------------------------------------------------------------------------------
// The token comes from `Authorization: Bearer`, the `token` cookie or (WebSocket) ?token=.
function requestToken(req, query) {
  const header = req.headers.authorization || "";
  if (header.toLowerCase().startsWith("bearer ")) return header.slice(7).trim();
  if (query && query.get("token")) return query.get("token");
  return (req.cookies && req.cookies.token) || null;
}

// The user id of a well-signed token (claim `sub`, else `userId`), or null.
function userIdFor(token) {
  if (!token) return null;
  try {
    const claims = jwt.verify(token, JWT_SECRET, { algorithms: ["HS256"] });
    const id = claims.sub || claims.userId;
    return typeof id === "string" && id ? id : null;
  } catch {
    return null;
  }
}

// -- REST -----------------------------------------------------------------------------------
const app = express();
app.disable("x-powered-by");
app.use(express.json());
app.use(cookieParser());

app.get("/healthz", (req, res) => res.type("text/plain").send("ok"));

app.get("/vton", async (req, res) => {
  const userId = userIdFor(requestToken(req));
  if (!userId) return res.status(401).json({ error: "Unauthorized" });
  if (!pool) return res.status(503).json({ error: "no PostgreSQL DATABASE_URL" });
  try {
    const { rows } = await pool.query(HISTORY_SQL, [userId]);
    res.json(rows.map(tryonToJson));
  } catch (err) {
    console.error("GET /vton:", err.message);
    res.status(500).json({ error: "Internal Server Error" });
  }
});

// -- WebSocket ------------------------------------------------------------------------------
const server = http.createServer(app);
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 4096 });
const socketsByUser = new Map(); // user id -> Set of sockets
const parseCookies = cookieParser();

server.on("upgrade", (req, socket, head) => {
  const url = new URL(req.url, "http://localhost");
  if (url.pathname !== "/ws") return socket.destroy();
  parseCookies(req, null, () => {}); // req.cookies, as on the REST routes
  const userId = userIdFor(requestToken(req, url.searchParams));
  wss.handleUpgrade(req, socket, head, (ws) => {
    if (!userId) return ws.close(4401, "Unauthorized"); // accepted, then closed (as ours)
    let sockets = socketsByUser.get(userId);
    if (!sockets) socketsByUser.set(userId, (sockets = new Set()));
    sockets.add(ws);
    ws.isAlive = true;
    ws.on("pong", () => (ws.isAlive = true));
    ws.on("error", () => ws.terminate());
    ws.on("close", () => {
      sockets.delete(ws);
      if (sockets.size === 0 && socketsByUser.get(userId) === sockets) socketsByUser.delete(userId);
    });
    // Our protocol's greeting (gateway/ws.py): the bench client waits for it. Nothing to replay.
    ws.send(JSON.stringify({ event: "ready", user_id: userId, replayed: 0, truncated: false }));
  });
});

// Ping every socket each heartbeat; one that did not answer the previous ping is dropped.
const heartbeat = setInterval(() => {
  for (const ws of wss.clients) {
    if (!ws.isAlive) {
      ws.terminate();
      continue;
    }
    ws.isAlive = false;
    ws.ping();
  }
}, HEARTBEAT_MS);

// One subscription per process; each message goes, as published, to its user's sockets.
const subscriber = createClient({ url: REDIS_URL });
subscriber.on("error", (err) => console.error("redis:", err.message));

function forward(message) {
  let userId;
  try {
    userId = JSON.parse(message).user_id;
  } catch {
    return;
  }
  const sockets = socketsByUser.get(String(userId));
  if (!sockets) return;
  for (const ws of sockets) if (ws.readyState === WebSocket.OPEN) ws.send(message);
}

async function main() {
  await subscriber.connect();
  await subscriber.subscribe(CHANNEL, forward);
  // Every address, like ours (0.0.0.0): the bench client spreads its sockets over 127.0.0.1-4.
  server.listen(PORT, "0.0.0.0", () => console.log(`original replica on :${PORT}, channel ${CHANNEL}`));
}

function shutdown() {
  clearInterval(heartbeat);
  for (const ws of wss.clients) ws.terminate();
  server.close();
  Promise.allSettled([subscriber.quit(), pool && pool.end()]).then(() => process.exit(0));
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
