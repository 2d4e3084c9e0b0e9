// The dashboard: sign in with an API key, usage, keys, tasks, and a task's result drawn over its media.
import { Api, ApiError, uploadFile } from "./api.js";
import { drawFrame } from "./overlay.js";

const SESSION_KEY = "facemint.apiKey";
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const MAX_STAGE_WIDTH = 800;
const POLL_MS = 2000;

const $ = (id) => document.getElementById(id);
let api = null;
let shownTask = null;
let pollTimer = null;

// ---- small DOM helpers (text only: nothing from the API is ever parsed as HTML) ----

function el(tag, text = "", attrs = {}) {
  const node = document.createElement(tag);
  if (text !== "") node.textContent = text;
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "–";
}

function notice(message) {
  const box = $("notice");
  box.textContent = message;
  box.hidden = !message;
}

function describe(err) {
  if (err instanceof ApiError) return `${err.message} (${err.code}${err.requestId ? `, ${err.requestId}` : ""})`;
  return String(err && err.message ? err.message : err);
}

/** Run an action; an expired or revoked session signs out, other errors land in `target`. */
async function guarded(action, target) {
  try {
    if (target) target.textContent = "";
    return await action();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      signOut("Your session ended: the key is no longer valid. Sign in with another key.");
      return undefined;
    }
    if (target) target.textContent = describe(err);
    else notice(describe(err));
    return undefined;
  }
}

// ---- session ----

async function signIn(key) {
  const candidate = new Api(key.trim());
  const usage = await candidate.usage();
  api = candidate;
  sessionStorage.setItem(SESSION_KEY, api.key);
  $("signin").hidden = true;
  $("app").hidden = false;
  $("sign-out").hidden = false;
  renderUsage(usage);
  await Promise.all([refreshKeys(), refreshTasks()]);
}

function signOut(message = "") {
  api = null;
  stopPolling();
  sessionStorage.removeItem(SESSION_KEY);
  $("app").hidden = true;
  $("sign-out").hidden = true;
  $("signin").hidden = false;
  $("who").textContent = "";
  $("signin-key").value = "";
  notice(message);
}

function currentPrefix() {
  // A key reads fm_<prefix>_<secret>; listings show fm_<prefix>.
  return api ? api.key.split("_").slice(0, 2).join("_") : "";
}

// ---- usage ----

function meter(id, used, limit, text) {
  const box = $(id);
  const bar = box.querySelector("progress");
  bar.max = Math.max(limit, 1e-9);
  bar.value = Math.min(used, bar.max);
  box.querySelector(".value").textContent = text;
  box.classList.toggle("full", used >= limit);
}

function renderUsage(usage) {
  $("who").textContent = `${usage.account.name || usage.account.account_id} (${usage.account.account_id})`;
  $("plan").textContent = usage.account.plan;
  const m = usage.minutes;
  meter("meter-minutes", m.used, m.limit, `${m.used.toFixed(2)} of ${m.limit} min (${m.remaining.toFixed(2)} left)`);
  const c = usage.concurrent_tasks;
  meter("meter-concurrent", c.active, c.limit, `${c.active} of ${c.limit}`);
  const r = usage.requests || api.rate;
  if (r) {
    const used = r.limit - r.remaining;
    meter("meter-requests", used, r.limit, `${used} of ${r.limit}, resets ${new Date(r.reset * 1000).toLocaleTimeString()}`);
  }
  $("period").textContent = `Billing period ${when(usage.period.start)} – ${when(usage.period.end)}; ` +
    `${usage.tasks_billed} task(s) billed. Images count ${(1 / 60).toFixed(4)} min each.`;
}

async function refreshUsage() {
  const usage = await guarded(() => api.usage());
  if (usage) renderUsage(usage);
}

// ---- keys ----

function showSecret(key, note) {
  $("new-key-value").textContent = key;
  $("new-key-note").textContent = note;
  $("new-key").hidden = false;
}

function confirmButton(label, confirmLabel, action) {
  const button = el("button", label, { type: "button", class: "secondary" });
  button.addEventListener("click", async () => {
    if (button.dataset.armed !== "1") {
      button.dataset.armed = "1";
      button.textContent = confirmLabel;
      button.classList.add("danger");
      return;
    }
    button.disabled = true;
    await action();
  });
  return button;
}

async function rotate(key) {
  const grace = Number($("grace").value || 0);
  const rotated = await guarded(() => api.rotateKey(key.key_id, grace));
  if (!rotated) return;
  const mine = key.prefix === currentPrefix();
  showSecret(rotated.key, `New key ${rotated.prefix} replaces ${key.prefix}` +
    (grace ? `, which keeps working until ${when(rotated.previous.expires_at)}.` : ", which stopped working now."));
  if (mine) {
    // The dashboard moves to the new key, so that the session survives the old key's expiry.
    api.key = rotated.key;
    sessionStorage.setItem(SESSION_KEY, api.key);
  }
  await refreshKeys();
}

async function revoke(key) {
  const revoked = await guarded(() => api.revokeKey(key.key_id));
  if (!revoked) return;
  if ($("new-key-value").textContent.startsWith(`${key.prefix}_`)) $("new-key").hidden = true;
  if (key.prefix === currentPrefix()) {
    signOut(`Key ${key.prefix} was revoked; it was the key of this session.`);
    return;
  }
  await refreshKeys();
}

async function refreshKeys() {
  const page = await guarded(() => api.listKeys());
  if (!page) return;
  const body = $("keys-table").querySelector("tbody");
  body.replaceChildren();
  for (const key of page.keys) {
    const row = el("tr", "", { "data-key-id": key.key_id, "data-status": key.status });
    const prefix = el("td");
    prefix.append(el("code", key.prefix));
    if (key.prefix === currentPrefix()) prefix.append(" ", el("span", "this session", { class: "badge" }));
    row.append(prefix, el("td", key.name || "–"), el("td", key.status, { class: `status ${key.status}` }),
      el("td", when(key.created_at)), el("td", when(key.last_used_at)), el("td", when(key.expires_at)));
    const actions = el("td", "", { class: "actions" });
    if (key.status === "active") {
      actions.append(
        confirmButton("Rotate", "Confirm rotate", () => rotate(key)),
        confirmButton("Revoke", "Confirm revoke", () => revoke(key)),
      );
    } else if (key.status === "rotated") {
      actions.append(confirmButton("Revoke", "Confirm revoke", () => revoke(key)));
    }
    row.append(actions);
    body.append(row);
  }
}

// ---- tasks ----

function faceCount(task) {
  const summary = task.result_summary || (task.result && task.result.summary); // list items carry the summary
  return summary && typeof summary.total_faces === "number" ? String(summary.total_faces) : "–";
}

async function refreshTasks() {
  const page = await guarded(() => api.listTasks(10), $("tasks-error"));
  if (!page) return;
  const body = $("tasks-table").querySelector("tbody");
  body.replaceChildren();
  for (const task of page.tasks) {
    const row = el("tr", "", { "data-task-id": task.task_id });
    const view = el("button", "View", { type: "button", class: "secondary" });
    view.addEventListener("click", () => showTask(task.task_id));
    const actions = el("td");
    actions.append(view);
    const id = el("td");
    id.append(el("code", task.task_id));
    row.append(id, el("td", task.type), el("td", task.status, { class: `status ${task.status}` }),
      el("td", when(task.created_at)), el("td", faceCount(task)), actions);
    body.append(row);
  }
}

function selectedAttributes() {
  return [...document.querySelectorAll("input[name=attr]:checked")].map((box) => box.value);
}

async function submitTask(event) {
  event.preventDefault();
  const error = $("task-error");
  const type = $("task-type").value;
  const file = $("task-file").files[0];
  let mediaUrl = $("task-url").value.trim();
  const created = await guarded(async () => {
    if (file) {
      const upload = await api.createUpload(type, file.name);
      await uploadFile(upload, file);
      mediaUrl = upload.media_url;
    }
    if (!mediaUrl) throw new Error("choose a file or enter a media URL");
    return api.createTask({ type, media_url: mediaUrl, attributes: selectedAttributes() });
  }, error);
  if (!created) return;
  $("task-form").reset();
  await Promise.all([refreshTasks(), refreshUsage()]);
  await showTask(created.task_id);
}

function stopPolling() {
  if (pollTimer) clearTimeout(pollTimer);
  pollTimer = null;
}

async function showTask(taskId) {
  stopPolling();
  const task = await guarded(() => api.getTask(taskId), $("tasks-error"));
  if (!task) return;
  shownTask = task;
  renderTask(task);
  if (!TERMINAL.has(task.status)) {
    pollTimer = setTimeout(() => showTask(taskId), POLL_MS);
  } else {
    await Promise.all([refreshTasks(), refreshUsage()]);
  }
}

function stageSize(task, media) {
  const w = (task.media && task.media.width) || media.naturalWidth || media.videoWidth || MAX_STAGE_WIDTH;
  const h = (task.media && task.media.height) || media.naturalHeight || media.videoHeight || w * 0.5625;
  const scale = Math.min(1, MAX_STAGE_WIDTH / w);
  return { sourceWidth: w, sourceHeight: h, width: w * scale, height: h * scale };
}

function drawCurrent() {
  const task = shownTask;
  if (!task) return;
  const frames = (task.result && task.result.frames) || [];
  const index = Number($("frame-select").value || 0);
  const isVideo = task.type === "video";
  const media = isVideo ? $("result-video") : $("result-image");
  const size = stageSize(task, media);
  media.style.width = `${size.width}px`;
  media.style.height = `${size.height}px`;
  $("stage").style.width = `${size.width}px`;
  $("stage").style.height = `${size.height}px`;
  const drawn = drawFrame($("result-overlay"), frames[index] || { faces: [] },
    size.sourceWidth, size.sourceHeight, size.width, size.height);
  const summary = (task.result && task.result.summary) || {};
  $("result-summary").textContent = frames.length
    ? `${drawn} face(s) in this frame; ${summary.total_faces ?? "?"} in total, ` +
      `${summary.unique_identities ?? 0} identified, over ${frames.length} analysed frame(s).`
    : task.status === "failed" ? `Failed: ${task.error ? task.error.message : "unknown error"}` : `Status: ${task.status}`;
}

function renderTask(task) {
  $("result").hidden = false;
  $("result-id").textContent = task.task_id;
  $("result-status").textContent = task.status;
  $("result-json").textContent = JSON.stringify(task, null, 2);
  const frames = (task.result && task.result.frames) || [];
  const picker = $("frame-select");
  picker.replaceChildren(...frames.map((frame, i) =>
    el("option", `${i + 1} at ${Number(frame.timestamp || 0).toFixed(2)} s (${(frame.faces || []).length} faces)`,
      { value: String(i) })));
  $("frame-picker").hidden = frames.length < 2;
  $("stage").hidden = frames.length === 0;  // nothing to draw before a result exists
  const isVideo = task.type === "video";
  const image = $("result-image");
  const video = $("result-video");
  image.hidden = isVideo;
  video.hidden = !isVideo;
  const url = task.media && task.media.url;
  const media = isVideo ? video : image;
  if (url && media.getAttribute("src") !== url) {
    media.addEventListener(isVideo ? "loadeddata" : "load", drawCurrent, { once: true });
    media.addEventListener("error", drawCurrent, { once: true });
    media.setAttribute("src", url);
  }
  drawCurrent();
}

function onFrameChange() {
  const task = shownTask;
  const frames = (task && task.result && task.result.frames) || [];
  const frame = frames[Number($("frame-select").value || 0)];
  if (task && task.type === "video" && frame) {
    const video = $("result-video");
    video.addEventListener("seeked", drawCurrent, { once: true });
    video.currentTime = Number(frame.timestamp || 0);
  }
  drawCurrent();
}

// ---- wiring ----

function init() {
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("signin-error").textContent = "";
    try {
      await signIn($("signin-key").value);
      notice("");
    } catch (err) {
      $("signin-error").textContent = err instanceof ApiError && err.status === 401
        ? "That key is not valid (unknown, revoked or expired)." : describe(err);
    }
  });
  $("sign-out").addEventListener("click", () => signOut());
  $("refresh").addEventListener("click", () => refreshUsage());
  $("refresh-tasks").addEventListener("click", () => refreshTasks());
  $("key-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const created = await guarded(() => api.createKey($("key-name").value.trim()));
    if (!created) return;
    showSecret(created.key, `Key ${created.prefix} created.`);
    $("key-name").value = "";
    await refreshKeys();
  });
  $("copy-key").addEventListener("click", () => navigator.clipboard.writeText($("new-key-value").textContent));
  $("task-form").addEventListener("submit", submitTask);
  $("frame-select").addEventListener("change", onFrameChange);
  window.addEventListener("resize", drawCurrent);
  const saved = sessionStorage.getItem(SESSION_KEY);
  if (saved) {
    signIn(saved).catch(() => signOut("Sign in again: the saved key is no longer valid."));
  }
  document.body.dataset.ready = "1";
}

init();
