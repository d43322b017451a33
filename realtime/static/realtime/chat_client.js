// WebSocket client of the Local AI chat (/ws/chat/<session_id>). No build step.
//
// Handlers per server message type (`on("assistant_chunk", fn)`), plus a
// "state" pseudo-event: connecting | open | reconnecting | closed | failed.
// Reconnects as the chapter's client does: exponential backoff
// (min(1000 * 2^attempt, 30000) ms), at most 5 tries, reset once a
// connection opens. Codes that a retry cannot fix are not retried:
// 4401 (not authenticated), 4403 (forbidden), 4404 (no such endpoint) and
// 4408 (closed for idleness; the next send reconnects).

export const SUBPROTOCOL = "localai.v1";
const NO_RETRY_CODES = new Set([4401, 4403, 4404, 4408]);

export class ChatSocket {
  constructor({ url, apiKey = null, maxRetries = 5, baseDelayMs = 1000, maxDelayMs = 30000 }) {
    this.url = url;
    this.apiKey = apiKey;
    this.maxRetries = maxRetries;
    this.baseDelayMs = baseDelayMs;
    this.maxDelayMs = maxDelayMs;
    this.handlers = new Map();
    this.ws = null;
    this.attempts = 0;
    this.retryTimer = null;
    this.closedByUs = false;
    this.pending = [];
  }

  on(type, handler) {
    if (!this.handlers.has(type)) this.handlers.set(type, []);
    this.handlers.get(type).push(handler);
    return this;
  }

  emit(type, data) {
    for (const handler of this.handlers.get(type) || []) handler(data);
  }

  // The key travels as a subprotocol (browsers cannot set headers on a
  // WebSocket); the server answers with "localai.v1" only.
  protocols() {
    return this.apiKey ? [SUBPROTOCOL, `bearer.${this.apiKey}`] : [SUBPROTOCOL];
  }

  get isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.closedByUs = false;
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) return;
    this.emit("state", { state: "connecting", attempt: this.attempts });
    const ws = new WebSocket(this.url, this.protocols());
    this.ws = ws;
    ws.onopen = () => {
      this.attempts = 0;
      // "open" handlers go first (the page asks for the history there), so
      // frames queued while disconnected are answered after it, not wiped by it.
      this.emit("state", { state: "open" });
      const queued = this.pending.splice(0);
      for (const frame of queued) ws.send(JSON.stringify(frame));
    };
    ws.onmessage = (event) => {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        this.emit("error", { type: "error", code: "bad_frame", message: "Unreadable message from the server." });
        return;
      }
      this.emit(data.type, data);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.closedByUs) {
        this.emit("state", { state: "closed", code: event.code, reason: event.reason });
      } else if (NO_RETRY_CODES.has(event.code)) {
        this.emit("state", { state: "closed", code: event.code, reason: event.reason });
      } else {
        this.scheduleReconnect(event);
      }
    };
  }

  scheduleReconnect(event) {
    if (this.attempts >= this.maxRetries) {
      this.emit("state", { state: "failed", code: event.code, attempts: this.attempts });
      return;
    }
    this.attempts += 1;
    const delay = Math.min(this.baseDelayMs * 2 ** this.attempts, this.maxDelayMs);
    this.emit("state", { state: "reconnecting", attempt: this.attempts, delayMs: delay, code: event.code });
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  // Sends now when open; otherwise queues the frame and (re)connects.
  send(frame) {
    if (this.isOpen) {
      this.ws.send(JSON.stringify(frame));
      return;
    }
    this.pending.push(frame);
    if (!this.ws) {
      this.attempts = 0;
      this.connect();
    }
  }

  // `options`: the frame's optional fields that are set ({ max_tokens, temperature });
  // one left out is the model's default.
  sendChat(message, model, options = {}) {
    this.send({ type: "chat", message, ...(model ? { model } : {}), ...options });
  }

  cancel() { this.send({ type: "cancel" }); }
  clear() { this.send({ type: "clear" }); }
  ping() { this.send({ type: "ping" }); }
  history() { this.send({ type: "history" }); }

  close() {
    this.closedByUs = true;
    clearTimeout(this.retryTimer);
    this.pending = [];
    if (this.ws) this.ws.close(1000);
    else this.emit("state", { state: "closed", code: 1000 });
  }
}
