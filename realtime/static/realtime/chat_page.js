// The chat page: wires the DOM to a ChatSocket. Text is only ever set with
// textContent (model output is never parsed as HTML).
import { ChatSocket } from "./chat_client.js";

const KEY_STORAGE = "localai.chat.apiKey";       // sessionStorage: gone with the tab
const SESSION_STORAGE = "localai.chat.sessionId"; // localStorage: the conversation survives reloads

const app = document.getElementById("chat-app");
const $ = (id) => document.getElementById(id);
const els = {
  state: $("connection-state"),
  error: $("error-banner"),
  errorText: $("error-text"),
  transcript: $("transcript"),
  empty: $("empty-state"),
  form: $("chat-form"),
  input: $("message-input"),
  send: $("send-button"),
  cancel: $("cancel-button"),
  clear: $("clear-button"),
  model: $("model-select"),
  maxTokens: $("max-tokens-input"),
  temperature: $("temperature-input"),
  keyForm: $("key-form"),
  keyInput: $("key-input"),
  forgetKey: $("forget-key"),
  keyStatus: $("key-status"),
  session: $("session-id"),
};

const signedIn = app.dataset.authenticated === "true";
// A signed-in page uses the session; the key form only exists when signed out.
let apiKey = els.keyForm ? sessionStorage.getItem(KEY_STORAGE) : null;
let socket = null;
let generating = false;
let currentReply = null;

function newSessionId() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return "s-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function sessionId() {
  let id = localStorage.getItem(SESSION_STORAGE);
  if (!id || !/^[A-Za-z0-9._-]{1,128}$/.test(id)) {
    id = newSessionId();
    localStorage.setItem(SESSION_STORAGE, id);
  }
  return id;
}

function setState(text, kind) {
  els.state.textContent = text;
  els.state.dataset.state = kind;
}

function showError(message, code) {
  els.errorText.textContent = code ? `${message} (${code})` : message;
  els.error.hidden = false;
}

function hideError() {
  els.error.hidden = true;
  els.errorText.textContent = "";
}

function setGenerating(value) {
  generating = value;
  els.send.disabled = value;
  els.cancel.disabled = !value;
  app.dataset.generating = String(value);
}

function addMessage(role, text) {
  els.empty.hidden = true;
  const item = document.createElement("li");
  item.className = `message message-${role}`;
  const who = document.createElement("div");
  who.className = "message-role";
  who.textContent = role === "user" ? "You" : "Assistant";
  const body = document.createElement("div");
  body.className = "message-content";
  body.textContent = text;
  const meta = document.createElement("div");
  meta.className = "message-meta";
  item.append(who, body, meta);
  els.transcript.append(item);
  item.scrollIntoView({ block: "end" });
  return item;
}

function clearTranscript() {
  els.transcript.replaceChildren();
  els.empty.hidden = false;
}

function wsUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws/chat/${encodeURIComponent(sessionId())}`;
}

async function loadModels() {
  const headers = { Accept: "application/json" };
  if (apiKey) headers.Authorization = `Bearer ${apiKey}`;
  try {
    const response = await fetch(app.dataset.modelsUrl, { headers, credentials: "same-origin" });
    const body = await response.json();
    if (!response.ok) {
      const error = body.error || {};
      showError(`Could not load the models: ${error.message || response.status}`, error.code);
      return;
    }
    const previous = els.model.value;
    els.model.replaceChildren();
    for (const id of body.models) {
      const option = document.createElement("option");
      option.value = id;
      option.textContent = id;
      els.model.append(option);
    }
    const wanted = [previous, body.default].find((id) => body.models.includes(id));
    if (wanted) els.model.value = wanted;
    if (!body.models.length) showError("The backend has no models. Pull one with 'ollama pull <model>'.");
  } catch (err) {
    showError(`Could not load the models: ${err}`);
  }
}

$("notice-dismiss").addEventListener("click", () => { $("notice-banner").hidden = true; });

function connect() {
  if (socket) socket.close();
  setGenerating(false);
  socket = new ChatSocket({ url: wsUrl(), apiKey });

  socket.on("state", ({ state, code, attempt, delayMs, reason }) => {
    if (state === "open") {
      setState("Connected", "open");
      socket.history();
    } else if (state === "connecting") {
      setState("Connecting…", "connecting");
    } else if (state === "reconnecting") {
      setState(`Disconnected — retry ${attempt} of 5 in ${Math.round(delayMs / 1000)} s`, "reconnecting");
      setGenerating(false);
    } else if (state === "failed") {
      setState("Disconnected — gave up after 5 tries (send a message to try again)", "failed");
      setGenerating(false);
    } else if (state === "closed") {
      setGenerating(false);
      if (code === 4401) {
        setState("Not signed in", "closed");
        showError("Not authenticated: sign in, or paste a valid API key.", "invalid_api_key");
      } else if (code === 4403) {
        setState("Not allowed", "closed");
      } else if (code === 4408) {
        setState("Idle — reconnects when you send", "closed");
      } else {
        setState(`Closed${code ? ` (${code}${reason ? ": " + reason : ""})` : ""}`, "closed");
      }
    }
  });

  socket.on("history", ({ messages }) => {
    clearTranscript();
    for (const message of messages) addMessage(message.role, message.content);
  });
  socket.on("user_message", ({ content }) => {
    hideError();
    addMessage("user", content);
  });
  socket.on("assistant_start", ({ model }) => {
    setGenerating(true);
    currentReply = addMessage("assistant", "");
    currentReply.classList.add("streaming");
    currentReply.querySelector(".message-meta").textContent = model || "";
  });
  socket.on("assistant_chunk", ({ content }) => {
    if (!currentReply) currentReply = addMessage("assistant", "");
    // One text node per token: the reply grows as tokens arrive.
    currentReply.querySelector(".message-content").append(document.createTextNode(content));
    currentReply.scrollIntoView({ block: "end" });
  });
  socket.on("assistant_end", ({ full_response, usage, cancelled, model }) => {
    if (!currentReply) currentReply = addMessage("assistant", "");
    currentReply.classList.remove("streaming");
    currentReply.querySelector(".message-content").textContent = full_response;
    const meta = currentReply.querySelector(".message-meta");
    if (cancelled) {
      currentReply.classList.add("cancelled");
      meta.textContent = `${model} · cancelled`;
    } else if (usage) {
      meta.textContent = `${model} · ${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion tokens`;
    }
    currentReply = null;
    setGenerating(false);
    els.input.focus();
  });
  socket.on("cleared", () => {
    clearTranscript();
    hideError();
  });
  socket.on("pong", () => setState("Connected", "open"));
  // An operator's broadcast (admin): shown until dismissed or replaced.
  socket.on("notice", ({ message, level }) => {
    const banner = $("notice-banner");
    $("notice-text").textContent = message;
    banner.dataset.level = level || "info";
    banner.hidden = false;
  });
  socket.on("error", ({ message, code, retry_after }) => {
    if (code === "nothing_to_cancel") return; // the answer ended as Cancel was pressed
    const wait = retry_after ? ` Try again in ${retry_after} s.` : "";
    showError(`${message}${wait}`, code);
    if (currentReply) {
      currentReply.classList.remove("streaming");
      currentReply.classList.add("failed");
      currentReply.querySelector(".message-meta").textContent = "failed";
      currentReply = null;
      setGenerating(false);
    }
  });

  socket.connect();
}

function updateKeyStatus() {
  if (!els.keyForm) return;
  // Only the key's non-secret lookup part (lai_<prefix>) is ever shown.
  els.keyStatus.textContent = apiKey ? `Using a pasted key (${apiKey.slice(0, 12)}…)` : "";
  els.forgetKey.hidden = !apiKey;
}

// The answer's settings: an empty field is the model's default. A value the
// field's own range refuses is said here, before anything is sent; the server
// checks the same ranges.
function answerOptions() {
  const options = {};
  for (const [name, input] of [["max_tokens", els.maxTokens], ["temperature", els.temperature]]) {
    if (input.value.trim() === "" && input.validity.valid) continue;
    if (!input.checkValidity()) {
      showError(`${input.labels[0].textContent}: ${input.validationMessage}`);
      input.focus();
      return null;
    }
    options[name] = Number(input.value);
  }
  return options;
}

for (const input of [els.maxTokens, els.temperature]) {
  const key = `localai.chat.${input.id}`;  // localStorage: the settings survive reloads
  input.value = localStorage.getItem(key) || "";
  input.addEventListener("change", () => localStorage.setItem(key, input.value));
}

els.form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = els.input.value;
  if (!text.trim() || generating || !socket) return;
  hideError();
  const options = answerOptions();
  if (options === null) return;
  socket.sendChat(text, els.model.value || undefined, options);
  els.input.value = "";
});

els.input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    els.form.requestSubmit();
  }
});

els.cancel.addEventListener("click", () => socket && socket.cancel());
els.clear.addEventListener("click", () => socket && socket.clear());
$("error-dismiss").addEventListener("click", hideError);

els.keyForm?.addEventListener("submit", (event) => {
  event.preventDefault();
  const value = els.keyInput.value.trim();
  if (!value) return;
  apiKey = value;
  sessionStorage.setItem(KEY_STORAGE, value);
  els.keyInput.value = "";
  updateKeyStatus();
  hideError();
  loadModels();
  connect();
});

els.forgetKey?.addEventListener("click", () => {
  apiKey = null;
  sessionStorage.removeItem(KEY_STORAGE);
  updateKeyStatus();
  if (signedIn) {
    loadModels();
    connect();
  } else {
    if (socket) socket.close();
    setState("Not connected — sign in or paste a key", "closed");
  }
});

els.session.textContent = sessionId();
updateKeyStatus();
if (signedIn || apiKey) {
  loadModels();
  connect();
} else {
  setState("Not connected — sign in or paste a key", "closed");
}
