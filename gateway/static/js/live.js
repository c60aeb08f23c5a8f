// The live connection: a WebSocket at /ws that reconnects by itself with exponential backoff,
// passes the last event id it saw so the gateway replays what was missed, and asks the page to
// catch up (refetch) every time it (re)opens.
import { ApiError } from "./api.js";

const MIN_DELAY_MS = 1000;
const MAX_DELAY_MS = 30000;

export class LiveConnection {
  /**
   * getToken(): a fresh ws-token (rejects with ApiError); onMessage(obj); onOpen(isReconnect);
   * onState("connecting" | "open" | "reconnecting" | "offline"); onAuthLost(err).
   */
  constructor({ getToken, onMessage, onOpen, onState, onAuthLost }) {
    Object.assign(this, { getToken, onMessage, onOpen, onState, onAuthLost });
    this.socket = null;
    this.lastEventId = null;
    this.attempts = 0;
    this.timer = null;
    this.stopped = true;
    this.everOpened = false;
    this.badTokens = 0;
    this._online = () => this.reconnectNow();
    this._offline = () => {
      this._setState("offline");
      if (this.socket) this.socket.close(4000, "offline");
    };
    this._visible = () => {
      if (document.visibilityState === "visible" && !this.isOpen()) this.reconnectNow();
    };
  }

  isOpen() {
    return !!this.socket && this.socket.readyState === WebSocket.OPEN;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener("online", this._online);
    window.addEventListener("offline", this._offline);
    document.addEventListener("visibilitychange", this._visible);
    this._setState("connecting");
    this._connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    window.removeEventListener("online", this._online);
    window.removeEventListener("offline", this._offline);
    document.removeEventListener("visibilitychange", this._visible);
    if (this.socket) {
      const s = this.socket;
      this.socket = null;
      s.onclose = s.onmessage = s.onerror = s.onopen = null;
      s.close(1000, "bye");
    }
    this.lastEventId = null;
    this.everOpened = false;
    this.attempts = 0;
  }

  /** Skip the remaining backoff wait (the network came back, the tab became visible). */
  reconnectNow() {
    if (this.stopped || this.isOpen() || (this.socket && this.socket.readyState === WebSocket.CONNECTING)) return;
    clearTimeout(this.timer);
    this.attempts = 0;
    this._connect();
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.onState && this.onState(state);
  }

  _schedule() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    const base = Math.min(MAX_DELAY_MS, MIN_DELAY_MS * 2 ** this.attempts);
    const delay = base / 2 + Math.random() * (base / 2);
    this.attempts += 1;
    if (this.state !== "offline") this._setState("reconnecting");
    this.timer = setTimeout(() => this._connect(), delay);
  }

  async _connect() {
    if (this.stopped) return;
    let token;
    try {
      token = await this.getToken();
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        this.onAuthLost && this.onAuthLost(err);
        return;
      }
      this._schedule();
      return;
    }
    if (this.stopped) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const q = new URLSearchParams({ token });
    if (this.lastEventId) q.set("last_event_id", this.lastEventId);
    let socket;
    try {
      socket = new WebSocket(`${proto}//${location.host}/ws?${q}`);
    } catch {
      this._schedule();
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      if (this.socket !== socket) return;
      const isReconnect = this.everOpened;
      this.everOpened = true;
      this.attempts = 0;
      this.badTokens = 0;
      this._setState("open");
      this.onOpen && this.onOpen(isReconnect);
    };
    socket.onmessage = (ev) => {
      if (this.socket !== socket) return;
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return; // not ours (a keep-alive text, say)
      }
      if (!msg || typeof msg !== "object") return;
      if (msg.event_id) this.lastEventId = String(msg.event_id);
      this.onMessage && this.onMessage(msg);
    };
    socket.onclose = (ev) => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (this.stopped) return;
      if (ev.code === 4401) {
        // The ws-token was refused: get a new one at once (the 401 from /user/ws-token, if
        // the session itself is gone, sends the page to the login form). Twice in a row: back off.
        this.badTokens += 1;
        if (this.badTokens <= 1) {
          this._setState("reconnecting");
          this._connect();
          return;
        }
      }
      this._schedule();
    };
    socket.onerror = () => {
      /* onclose follows and decides */
    };
  }
}
