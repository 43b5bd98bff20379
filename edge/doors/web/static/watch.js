// Student page: plays the live lesson over WHEP (recvonly offer -> POST -> answer), shows the
// lesson's state, and talks to the box over the "lesson" data channel (hand, data saver, events).
import { byId } from "/static/common.js";
import { _, format, loadMessages } from "/static/i18n.js";
import { InkLayer } from "/static/board-ink.js";

await loadMessages();

// What the page says, by the key it keeps in `data-key` (tests and styles read the key).
const TEXT = {
  connecting: _("Connecting…"),
  connected: _("Live"),
  reconnecting: _("Connection lost, reconnecting…"),
  disconnected: _("Disconnected"),
  not_started: _("This lesson has not started yet. This page will start playing as soon as it does."),
  ended: _("This lesson has ended. Thank you for watching."),
  full: _("This lesson is full right now. We will try again in a moment."),
  failed: _("The lesson could not be played: {reason}"),
  raise_hand: _("Raise hand"),
  lower_hand: _("Lower hand"),
  hand_raised: _("Your hand is raised. The teacher will see it."),
  hand_acknowledged: _("The teacher has seen your hand."),
  audio_only: _("Your connection is weak: sound only for now."),
  quality_low: _("Lower quality to keep the lesson smooth."),
};

{
  const config = JSON.parse(document.getElementById("watch-config").textContent);
  const video = byId("video"), stateEl = byId("state"), messageEl = byId("message");
  const handBtn = byId("hand"), saverBox = byId("data-saver"), soundBtn = byId("sound");
  const RETRY_MS = config.retry_ms;

  const watch = { pc: null, channel: null, location: null, handRaised: false, ended: false, timer: null };
  window.classboxWatch = watch; // for tests and debugging
  const stage = video.closest(".stage");
  const ink = new InkLayer(byId("board")); // the board's page and ink, live over the video
  watch.ink = ink;

  function showState(key, live) {
    stateEl.textContent = TEXT[key];
    stateEl.dataset.key = key;
    stateEl.classList.toggle("live", Boolean(live));
  }

  function showMessage(key, values) {
    if (!key) {
      messageEl.hidden = true;
      return;
    }
    messageEl.textContent = format(TEXT[key], values || {});
    messageEl.hidden = false;
    messageEl.dataset.key = key;
  }

  function setHand(raised) {
    watch.handRaised = raised;
    handBtn.textContent = raised ? TEXT.lower_hand : TEXT.raise_hand;
    handBtn.classList.toggle("raised", raised);
  }

  function send(message) {
    if (watch.channel && watch.channel.readyState === "open") {
      watch.channel.send(JSON.stringify(message));
    }
  }

  function onLessonEvent(event) {
    const data = JSON.parse(event.data);
    if (typeof data.type === "string" && data.type.startsWith("board.")) {
      ink.apply(data);
    } else if (data.type === "welcome" && data.title) {
      byId("title").textContent = data.title;
      document.title = data.title;
    } else if (data.type === "hand") {
      setHand(Boolean(data.raised));
      showMessage(data.acknowledged ? "hand_acknowledged" : data.raised ? "hand_raised" : null);
    } else if (data.type === "layer") {
      const lower = data.layer === "lowest" || (data.layer === "low" && !saverBox.checked);
      showMessage(data.layer === "none" ? "audio_only" : lower ? "quality_low" : null);
      stage.classList.toggle("audio-only", data.layer === "none"); // sound and the board: the board instead of the picture
    } else if (data.type === "lesson.ended") {
      finish("ended");
    } else if (data.type === "reconnect") {
      watch.location = null; // the box closes this session itself
      showState("reconnecting");
      closePeer();
      retry(300 + Math.random() * 1000); // spread the class's rejoins over a second
    }
  }

  function parseIceServers(response) {
    const servers = [];
    const header = response.headers.get("Link") || "";
    for (const part of header.split(/,(?=\s*<)/)) {
      const match = part.match(/<([^>]+)>(.*)/);
      if (!match || !/rel="ice-server"/.test(match[2])) continue;
      const server = { urls: match[1] };
      const user = match[2].match(/username="((?:[^"\\]|\\.)*)"/);
      const cred = match[2].match(/credential="((?:[^"\\]|\\.)*)"/);
      if (user) server.username = user[1].replace(/\\(.)/g, "$1");
      if (cred) server.credential = cred[1].replace(/\\(.)/g, "$1");
      servers.push(server);
    }
    return servers;
  }

  function gathered(pc, ms) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
      pc.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, ms);
    });
  }

  async function playWithSound() {
    video.muted = false;
    try {
      await video.play();
      soundBtn.hidden = true;
    } catch (err) {
      video.muted = true; // autoplay rules: start muted, offer a button for sound
      soundBtn.hidden = false;
      video.play().catch(() => {});
    }
  }

  async function lessonState() {
    const response = await fetch(`/api/watch/${encodeURIComponent(config.join_code)}`);
    return response.json();
  }

  async function connect() {
    clearTimeout(watch.timer);
    const status = await lessonState().catch(() => ({ state: "live" }));
    if (status.state === "ended") return finish("ended");
    if (status.state !== "live") {
      showState("disconnected");
      showMessage("not_started");
      return retry(RETRY_MS);
    }
    if (status.title) byId("title").textContent = status.title;
    showState("connecting");
    const url = `/whep/${encodeURIComponent(config.join_code)}`;
    const preflight = await fetch(url, { method: "OPTIONS" }).catch(() => null);
    const pc = new RTCPeerConnection({ iceServers: preflight ? parseIceServers(preflight) : [] });
    watch.pc = pc;
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    watch.channel = pc.createDataChannel("lesson");
    watch.channel.onmessage = onLessonEvent;
    watch.channel.onopen = () => { handBtn.disabled = false; };
    const stream = new MediaStream();
    pc.ontrack = (event) => {
      stream.addTrack(event.track);
      video.srcObject = stream;
      playWithSound();
    };
    pc.onconnectionstatechange = () => {
      if (pc !== watch.pc) return;
      if (pc.connectionState === "connected") {
        showState("connected", true);
        if (messageEl.dataset.key !== "hand_raised") showMessage(null);
      } else if (pc.connectionState === "failed" || pc.connectionState === "disconnected") {
        showState("reconnecting");
        if (pc.connectionState === "failed") reconnect();
      }
    };
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc, 2000);
    const query = saverBox.checked ? "?data_saver=1" : "";
    const response = await fetch(url + query, {
      method: "POST",
      headers: { "Content-Type": "application/sdp" },
      body: pc.localDescription.sdp,
    });
    if (response.status !== 201) return refused(response);
    watch.location = response.headers.get("Location");
    await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
  }

  async function refused(response) {
    closePeer();
    const reason = await response.json().then((body) => body.detail).catch(() => response.statusText);
    if (response.status === 404) {
      const status = await lessonState().catch(() => ({ state: "unknown" }));
      if (status.state === "ended") return finish("ended");
      showMessage("not_started");
      return retry(RETRY_MS);
    }
    if (response.status === 503) {
      showMessage("full");
      return retry(RETRY_MS * 3);
    }
    showState("disconnected");
    showMessage("failed", { reason });
  }

  function retry(ms) {
    clearTimeout(watch.timer);
    watch.timer = setTimeout(() => connect().catch(failed), ms);
  }

  function reconnect() {
    leave();
    retry(RETRY_MS);
  }

  function failed(err) {
    showState("disconnected");
    showMessage("failed", { reason: String(err && err.message ? err.message : err) });
    retry(RETRY_MS * 2);
  }

  function closePeer() {
    if (watch.pc) watch.pc.close();
    watch.pc = null;
    watch.channel = null;
    handBtn.disabled = true;
  }

  function leave() {
    if (watch.location) {
      fetch(watch.location, { method: "DELETE", keepalive: true }).catch(() => {});
      watch.location = null;
    }
    closePeer();
  }

  function finish(key) {
    watch.ended = true;
    clearTimeout(watch.timer);
    watch.location = null; // the box already closed the session
    closePeer();
    video.srcObject = null;
    showState("disconnected");
    showMessage(key);
  }

  handBtn.addEventListener("click", () => send({ type: "hand", raised: !watch.handRaised }));
  soundBtn.addEventListener("click", playWithSound);
  saverBox.checked = localStorage.getItem("classbox.dataSaver") === "1";
  saverBox.addEventListener("change", () => {
    localStorage.setItem("classbox.dataSaver", saverBox.checked ? "1" : "0");
    send({ type: "data_saver", on: saverBox.checked });
  });
  window.addEventListener("pagehide", leave);
  connect().catch(failed);
}
