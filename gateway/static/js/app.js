// Proteus web page: accounts, picking and uploading photos, starting try-ons, and the live history.
// Plain ES modules, no build step, no libraries. This module wires the parts together:
//   api.js (REST client), contract.js (the try-on limits from /openapi.json), dom.js, state.js,
//   session.js (views, login state, /health), auth.js (forms, Account view), keys.js (API keys),
//   pickers.js + upload.js (photos), advanced.js (settings), create.js (starting try-ons),
//   history.js + card.js + assets.js (the history), dialog.js (a result full size), live.js (WebSocket).
import { $ } from "./dom.js";
import { state } from "./state.js";
import { wireApiKeys } from "./keys.js";
import { wireAuth } from "./auth.js";
import { boot, route, watchSession } from "./session.js";
import { wirePickers } from "./pickers.js";
import { applyContract, wireModelChoice } from "./advanced.js";
import { wireCreate } from "./create.js";
import { loadOlder } from "./history.js";
import { wireDialogs } from "./dialog.js";

function main() {
  watchSession();
  wireAuth();
  wireApiKeys();
  wirePickers();
  wireCreate();
  wireModelChoice();
  wireDialogs();
  applyContract();
  $("#load-more").addEventListener("click", loadOlder);
  window.addEventListener("hashchange", () => route());
  boot();
}

main();

// For tests and debugging in the console: read-only peeks at the page's state.
window.proteus = Object.freeze({
  get liveState() {
    return state.live ? state.live.state : "stopped";
  },
  get lastEventId() {
    return state.live ? state.live.lastEventId : null;
  },
});
