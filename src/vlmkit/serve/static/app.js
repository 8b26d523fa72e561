// The vlmkit chat page: plain JS against the server's own OpenAI-compatible API (no build step).
// The conversation lives in `history` (OpenAI message format) and is re-sent each turn, so media stay attached
// to the turn they were asked about. Model output is only ever inserted as text (never as HTML).
"use strict";

const $ = (id) => document.getElementById(id);
const MAX_FILE_BYTES = 30 * 1024 * 1024;

const state = {
  history: [],        // [{role, content}], what the API sees
  attachment: null,   // {kind: "image"|"video", url: dataURL, name}
  model: null,
  apiKey: sessionStorage.getItem("vlmkit-api-key") || "",
  controller: null,   // AbortController of the answer being streamed
  followEnd: true,    // keep the newest turn in view (false once the reader scrolls up)
};

function headers() {
  const h = { "Content-Type": "application/json" };
  if (state.apiKey) h["Authorization"] = `Bearer ${state.apiKey}`;
  return h;
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    return body.error?.message || `HTTP ${response.status}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}

// --- connecting -------------------------------------------------------------------------------

async function connect() {
  try {
    const health = await (await fetch("/health")).json();
    $("auth").hidden = !health.auth_required;
    const response = await fetch("/v1/models", { headers: headers() });
    if (response.status === 401) {
      $("model-name").textContent = "API key needed";
      setStatus("This server needs an API key.", true);
      return;
    }
    if (!response.ok) throw new Error(await errorMessage(response));
    state.model = (await response.json()).data[0].id;
    $("model-name").textContent = state.model;
    setStatus("");
  } catch (err) {
    $("model-name").textContent = "offline";
    setStatus(`Cannot reach the server: ${err.message}`, true);
  }
}

// --- attachments ------------------------------------------------------------------------------

function readAsDataURL(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function mediaElement(kind, url) {
  const el = document.createElement(kind === "video" ? "video" : "img");
  el.src = url;
  if (kind === "video") { el.controls = true; el.muted = true; }
  else el.alt = "attached image";
  return el;
}

async function attach(file) {
  if (!file) return;
  const kind = file.type.startsWith("video/") ? "video" : file.type.startsWith("image/") ? "image" : null;
  if (!kind) { setStatus(`${file.name} is not an image or a video.`, true); return; }
  if (file.size > MAX_FILE_BYTES) { setStatus(`${file.name} is too large (max 30 MB).`, true); return; }
  state.attachment = { kind, url: await readAsDataURL(file), name: file.name };
  $("preview-media").replaceChildren(mediaElement(kind, state.attachment.url));
  $("preview").hidden = false;
  $("drop-label").hidden = true;
  setStatus(`${file.name} attached.`);
  $("question").focus();
}

function detach() {
  state.attachment = null;
  $("file-input").value = "";
  $("preview-media").replaceChildren();
  $("preview").hidden = true;
  $("drop-label").hidden = false;
}

// --- conversation -----------------------------------------------------------------------------

// The newest turn stays in view: the window scrolls to the bottom (above the sticky composer) as turns are
// added, answers stream in and media load, unless the reader has scrolled up to read earlier turns.
function nearBottom() {
  const root = document.documentElement;
  return root.scrollHeight - (window.scrollY + window.innerHeight) < 80;
}

function scrollToEnd(force) {
  if (force || state.followEnd) window.scrollTo({ top: document.documentElement.scrollHeight });
}

window.addEventListener("scroll", () => { state.followEnd = nearBottom(); }, { passive: true });

function addBubble(role, text, attachment) {
  $("empty-hint").hidden = true;
  const bubble = document.createElement("div");
  bubble.className = `message ${role}`;
  if (attachment) {
    const media = mediaElement(attachment.kind, attachment.url);
    media.addEventListener(attachment.kind === "video" ? "loadedmetadata" : "load", () => scrollToEnd(false));
    bubble.appendChild(media);
  }
  const body = document.createElement("div");
  body.className = "text";
  body.textContent = text;
  bubble.appendChild(body);
  $("messages").appendChild(bubble);
  scrollToEnd(true);  // a new turn always comes into view
  state.followEnd = true;
  return body;
}

function userContent(question, attachment) {
  if (!attachment) return question;
  const part = attachment.kind === "video"
    ? { type: "video_url", video_url: { url: attachment.url } }
    : { type: "image_url", image_url: { url: attachment.url } };
  return [part, { type: "text", text: question }];
}

// Reads an OpenAI server-sent-event stream, calling onDelta for each content piece.
async function readStream(response, onDelta) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        const piece = chunk.choices?.[0]?.delta?.content;
        if (piece) onDelta(piece);
      }
    }
  }
}

async function ask(event) {
  event?.preventDefault();
  const question = $("question").value.trim();
  if (!question || state.controller) return;
  if (!state.model) await connect();
  if (!state.model) return;

  const attachment = state.attachment;
  const turn = { role: "user", content: userContent(question, attachment) };
  addBubble("user", question, attachment);
  const answer = addBubble("assistant", "");
  answer.parentElement.classList.add("streaming");
  $("question").value = "";
  detach();
  setBusy(true);
  setStatus("Thinking…");

  state.controller = new AbortController();
  let text = "";
  try {
    const response = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: headers(),
      signal: state.controller.signal,
      body: JSON.stringify({
        model: state.model,
        messages: [...state.history, turn],
        stream: true,
        max_tokens: Number($("max-tokens").value) || 256,
        temperature: Number($("temperature").value) || 0,
      }),
    });
    if (!response.ok) throw new Error(await errorMessage(response));
    await readStream(response, (piece) => {
      text += piece;
      answer.textContent = text;
      scrollToEnd(false);
    });
    state.history.push(turn, { role: "assistant", content: text });
    setStatus("");
  } catch (err) {
    if (err.name === "AbortError") {
      state.history.push(turn, { role: "assistant", content: text });
      setStatus("Stopped.");
    } else {
      answer.parentElement.classList.add("failed");
      answer.textContent = `⚠ ${err.message}`;
      setStatus("The question was not answered; you can ask again.", true);
    }
  } finally {
    answer.parentElement.classList.remove("streaming");
    answer.parentElement.classList.add("done");
    scrollToEnd(false);
    state.controller = null;
    setBusy(false);
  }
}

function setBusy(busy) {
  $("send").disabled = busy;
  $("stop").hidden = !busy;
}

function newConversation() {
  state.controller?.abort();
  state.history = [];
  detach();
  $("messages").replaceChildren($("empty-hint"));
  $("empty-hint").hidden = false;
  $("question").value = "";
  setStatus("New conversation.");
  $("question").focus();
}

// --- wiring -----------------------------------------------------------------------------------

function wire() {
  const zone = $("drop-zone");
  $("pick-file").addEventListener("click", () => $("file-input").click());
  $("file-input").addEventListener("change", (e) => attach(e.target.files[0]));
  $("remove-media").addEventListener("click", detach);
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    attach(e.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (e) => {
    const file = [...(e.clipboardData?.files || [])][0];
    if (file) attach(file);
  });
  $("composer").addEventListener("submit", ask);
  $("question").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) ask(e);
  });
  $("stop").addEventListener("click", () => state.controller?.abort());
  $("new-chat").addEventListener("click", newConversation);
  $("save-key").addEventListener("click", () => {
    state.apiKey = $("api-key").value.trim();
    sessionStorage.setItem("vlmkit-api-key", state.apiKey);
    connect();
  });
  $("api-key").value = state.apiKey;
  connect();
}

wire();
