// The teacher's panel: follows the box on /api/events, starts and stops the lesson, previews what
// students see (the low layer, a preview the box does not count as a student), answers raised hands,
// mutes the microphone and opens courseware on the board. Every string goes through `_()`.
import { byId, el, post } from "/static/common.js";
import { _, format, loadMessages } from "/static/i18n.js";
import { boxEvents } from "/static/panel/events.js";
import { pinScreen } from "/static/panel/pin.js";

await loadMessages();

// -- the panel ----------------------------------------------------------------------------------

const panel = {
  lesson: null,
  joinUrl: null,
  viewers: new Map(),
  startedAt: 0,
  muted: false,
  preview: null,
  recordings: [],
  events: null,
};
window.classboxPanel = panel; // for tests and debugging

function elapsedText(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const two = (n) => String(n).padStart(2, "0");
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h ? `${h}:${two(m)}:${two(s % 60)}` : `${m}:${two(s % 60)}`;
}

function tick() {
  if (panel.lesson) byId("elapsed").textContent = elapsedText((performance.now() - panel.startedAt) / 1000);
}

function showLesson(lesson, joinUrl) {
  const wasLive = Boolean(panel.lesson);
  panel.lesson = lesson && lesson.state === "live" ? lesson : null;
  const live = Boolean(panel.lesson);
  document.body.dataset.state = live ? "live" : "idle";
  byId("on-air").hidden = !live;
  byId("stop").hidden = !live;
  byId("idle-note").hidden = live;
  byId("start-card").hidden = live;
  byId("live-card").hidden = !live;
  byId("join-card").hidden = !live;
  if (!live) {
    byId("confirm-stop").open && byId("confirm-stop").close();
    byId("qr-dialog").open && byId("qr-dialog").close();
    panel.viewers.clear();
    showViewers();
    closePreview();
    return;
  }
  panel.startedAt = performance.now() - (lesson.duration_s || 0) * 1000;
  tick();
  byId("live-title").textContent = lesson.title;
  byId("join-code").textContent = lesson.join_code;
  byId("qr-large-code").textContent = lesson.join_code;
  if (joinUrl) {
    panel.joinUrl = joinUrl;
    byId("join-link").textContent = joinUrl;
  }
  const qr = `/api/panel/qr.svg?code=${encodeURIComponent(lesson.join_code)}`;
  if (byId("qr").getAttribute("src") !== qr) {
    byId("qr").src = qr;
    byId("qr-large").src = qr;
  }
  if (!wasLive || !panel.preview) openPreview();
}

function showViewers() {
  const count = panel.viewers.size;
  byId("watching").textContent = count ? format(_("Students watching: {count}"), { count }) : _("No students yet");
  const hands = byId("hands");
  hands.replaceChildren();
  for (const viewer of panel.viewers.values()) {
    if (!viewer.hand_raised) continue;
    const item = document.createElement("li");
    item.className = "hand";
    item.dataset.viewer = viewer.id;
    const name = document.createElement("span");
    name.className = "who";
    name.textContent = format(_("{name} raised a hand"), { name: viewer.name });
    const speak = button(_("Let speak"), "speak", () => answerHand(viewer.id, "acknowledge"));
    const dismiss = button(_("Dismiss"), "dismiss", () => answerHand(viewer.id, "dismiss"));
    item.append(name, speak, dismiss);
    hands.append(item);
  }
}

function button(text, className, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.textContent = text;
  b.addEventListener("click", onClick);
  return b;
}

async function answerHand(viewerId, how) {
  const viewer = panel.viewers.get(viewerId);
  if (viewer) viewer.hand_raised = false;
  showViewers();
  await post(`/api/viewers/${encodeURIComponent(viewerId)}/hand/${how}`);
}

function setHand(viewerId, raised, name) {
  const viewer = panel.viewers.get(viewerId) || { id: viewerId, name: name || "" };
  viewer.hand_raised = raised;
  if (name) viewer.name = name;
  panel.viewers.set(viewerId, viewer);
  showViewers();
}

function showStatus(lines) {
  const list = byId("status");
  list.replaceChildren();
  const shown = lines.length ? lines : [{ level: "ok", text: _("Everything is ready"), key: "ok" }];
  for (const line of shown) {
    const item = document.createElement("li");
    item.className = line.level;
    item.dataset.key = line.key;
    item.textContent = line.text;
    list.append(item);
  }
}

function showLevel(dbfs) {
  const share = panel.muted ? 0 : Math.min(1, Math.max(0, (dbfs + 60) / 60));
  const level = byId("level");
  level.style.inlineSize = `${Math.round(share * 100)}%`;
  level.classList.toggle("loud", !panel.muted && dbfs > -12);
  level.classList.toggle("clipping", !panel.muted && dbfs > -3);
}

function showMuted(muted) {
  panel.muted = Boolean(muted);
  const mute = byId("mute");
  mute.setAttribute("aria-pressed", String(panel.muted));
  mute.classList.toggle("on", panel.muted);
  mute.textContent = panel.muted ? _("Microphone muted: tap to unmute") : _("Mute microphone");
  if (panel.muted) showLevel(-120);
}

function recordingState(recording) {
  if (recording.state === "recording") return _("Recording now");
  if (recording.state === "failed") return _("Recording failed");
  const upload = recording.upload_state;
  if (upload === "uploaded") return _("Uploaded");
  if (upload === "uploading" && recording.size) {
    const percent = Math.min(100, Math.floor((100 * (recording.uploaded_bytes || 0)) / recording.size));
    return format(_("Uploading: {percent} %"), { percent });
  }
  if (upload === "queued") return _("Waiting to upload");
  if (upload === "failed") return _("Upload refused");
  return _("On this box");
}

function showRecordings(recordings) {
  panel.recordings = recordings;
  const list = byId("recordings");
  list.replaceChildren();
  if (!recordings.length) {
    list.append(el("li", { class: "empty", text: _("No recordings today") }));
    return;
  }
  for (const recording of recordings) {
    const item = document.createElement("li");
    item.dataset.recording = recording.id;
    const title = document.createElement("span");
    title.className = "title";
    title.textContent = recording.title;
    const state = document.createElement("span");
    state.className = `state ${recording.upload_state}`;
    state.textContent = recordingState(recording);
    item.append(title, state);
    if (recording.board) {
      const board = document.createElement("a");
      board.className = "board-pdf";
      board.href = recording.board;
      board.textContent = _("Board (PDF)");
      item.append(board);
    }
    list.append(item);
  }
}

function uploadProgress(data) {
  const recording = panel.recordings.find((r) => r.id === data.recording);
  if (!recording || data.kind !== "recording") return;
  recording.upload_state = "uploading";
  recording.uploaded_bytes = data.offset;
  recording.size = data.size;
  showRecordings(panel.recordings);
}

function applyState(state) {
  panel.viewers = new Map((state.viewers || []).map((v) => [v.id, v]));
  showLesson(state.lesson, state.join_url);
  showViewers();
  showStatus(state.status || []);
  showMuted(state.microphone && state.microphone.muted);
  showRecordings(state.recordings || []);
}

function follow() {
  const events = boxEvents();
  panel.events = events;
  const on = (topic, handle) => events.addEventListener(topic, (event) => handle(JSON.parse(event.data)));
  on("state", applyState);
  on("status", (data) => showStatus(data.lines));
  on("viewer.joined", (data) => {
    panel.viewers.set(data.viewer.id, data.viewer);
    showViewers();
  });
  on("viewer.left", (data) => {
    panel.viewers.delete(data.viewer);
    showViewers();
  });
  on("hand.raised", (data) => setHand(data.viewer, true, data.name));
  for (const topic of ["hand.lowered", "hand.acknowledged", "hand.dismissed"]) {
    on(topic, (data) => setHand(data.viewer, false, data.name));
  }
  on("audio.level", (data) => showLevel(data.rms_dbfs));
  on("microphone.muted", (data) => showMuted(data.muted));
  on("upload.progress", uploadProgress);
  events.addEventListener("error", () => {
    if (events.readyState !== EventSource.OPEN) {
      showStatus([{ level: "warning", key: "connection", text: _("The panel lost the box: reconnecting") }]);
    }
  });
}

// -- starting and stopping ------------------------------------------------------------------------

async function startLesson() {
  const start = byId("start");
  start.disabled = true;
  try {
    const choice = byId("course").selectedOptions[0];
    const title = byId("title").value.trim() || (choice && choice.value ? choice.dataset.title : "");
    const answer = await post("/api/lessons", { title });
    if (answer.ok || answer.status === 409) {
      if (answer.ok) showLesson(answer.data.lesson, null);
      if (choice && choice.value) await openOnBoard(choice.dataset.course, choice.dataset.path);
    } else {
      showStatus([{ level: "warning", key: "start", text: _("The lesson could not start: try again") }]);
    }
  } finally {
    start.disabled = false;
  }
}

async function stopLesson() {
  byId("confirm-stop").close();
  const answer = await post("/api/lessons/current/stop");
  if (answer.ok) showLesson(answer.data.lesson, null);
}

// -- the preview: the low layer, as the student page plays it -------------------------------------

function gathered(pc, ms) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
    setTimeout(resolve, ms);
  });
}

async function openPreview() {
  closePreview();
  const pc = new RTCPeerConnection({ iceServers: [] });
  const preview = { pc, id: null };
  panel.preview = preview;
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  const stream = new MediaStream();
  pc.ontrack = (event) => {
    stream.addTrack(event.track);
    byId("preview").srcObject = stream;
    byId("preview").play().catch(() => {});
  };
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === "failed" && panel.preview === preview && panel.lesson) {
      setTimeout(() => panel.lesson && panel.preview === preview && openPreview(), 2000);
    }
  };
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc, 2000);
    const answer = await post("/api/panel/preview", { sdp: pc.localDescription.sdp });
    if (!answer.ok || panel.preview !== preview) {
      if (panel.preview === preview) closePreview();
      return;
    }
    preview.id = answer.data.id;
    await pc.setRemoteDescription({ type: "answer", sdp: answer.data.sdp });
  } catch (err) {
    if (panel.preview === preview) closePreview();
  }
}

function closePreview() {
  const preview = panel.preview;
  panel.preview = null;
  if (!preview) return;
  if (preview.id) {
    fetch(`/api/panel/preview/${encodeURIComponent(preview.id)}`, { method: "DELETE", keepalive: true }).catch(() => {});
  }
  preview.pc.close();
  byId("preview").srcObject = null;
}

// -- courseware and the board ---------------------------------------------------------------------

async function openOnBoard(course, path) {
  const answer = await post("/api/board/open", { course, path });
  if (!answer.ok) showStatus([{ level: "warning", key: "board", text: _("This item is not on the box any more") }]);
  return answer.ok;
}

async function loadCourseware() {
  const answer = await fetch("/api/courseware").catch(() => null);
  if (!answer || !answer.ok) return;
  const listing = await answer.json();
  const list = byId("items");
  const select = byId("course");
  const cached = [];
  for (const course of listing.courses || []) {
    for (const item of course.items || []) {
      if (item.state === "cached") cached.push({ course, item });
    }
  }
  if (!cached.length) return;
  list.replaceChildren();
  for (const { course, item } of cached) {
    const row = document.createElement("li");
    const label = document.createElement("span");
    label.className = "item";
    label.textContent = `${course.title} · ${item.path}`;
    const open = button(_("Open on board"), "open", async () => {
      if (await openOnBoard(course.id, item.path)) flash(open);
    });
    row.append(label, open);
    list.append(row);
    const option = document.createElement("option");
    option.value = `${course.id}/${item.path}`;
    option.textContent = `${course.title} · ${item.path}`;
    Object.assign(option.dataset, { course: course.id, path: item.path, title: course.title });
    select.append(option);
  }
}

function flash(target) {
  target.classList.add("done");
  setTimeout(() => target.classList.remove("done"), 1500);
}

// -- the microphone ---------------------------------------------------------------------------------

async function toggleMute() {
  const answer = await post("/api/microphone", { muted: !panel.muted });
  if (answer.ok) showMuted(answer.data.muted === undefined ? !panel.muted : answer.data.muted);
  else showStatus([{ level: "warning", key: "mute", text: _("The microphone could not be muted: try again") }]);
}

function panelScreen() {
  byId("start").addEventListener("click", startLesson);
  byId("stop").addEventListener("click", () => byId("confirm-stop").showModal());
  byId("stop-confirm").addEventListener("click", stopLesson);
  byId("stop-cancel").addEventListener("click", () => byId("confirm-stop").close());
  byId("qr-open").addEventListener("click", () => byId("qr-dialog").showModal());
  byId("qr-close").addEventListener("click", () => byId("qr-dialog").close());
  byId("mute").addEventListener("click", toggleMute);
  window.addEventListener("pagehide", closePreview);
  setInterval(tick, 1000);
  follow();
  loadCourseware();
}

if (byId("pin-form")) pinScreen();
else panelScreen();
