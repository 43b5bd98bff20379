// The panel's room card: one button per camera preset (Board, Teacher, Class...) and the board display's
// power. A device that does not answer says so in the card (and in the status strip); the rest goes on.
import { api } from "/static/common.js";
import { _, loadMessages } from "/static/i18n.js";
import { onBoxEvent } from "/static/panel/events.js";

const card = document.getElementById("room-card");
const message = document.getElementById("room-message");
const presets = document.getElementById("presets");
let busy = false;

function say(text) {
  message.textContent = text;
  message.hidden = !text;
}

async function send(method, url, body) {
  try {
    return await api(method, url, body);
  } catch (_err) {
    return { ok: false, data: {} };
  }
}

function pressed(button, on) {
  button.setAttribute("aria-pressed", on ? "true" : "false");
  button.classList.toggle("done", on);
}

function showPreset(name) {
  for (const button of presets.querySelectorAll("button")) pressed(button, button.dataset.preset === name);
}

function showPower(power) {
  pressed(document.getElementById("board-on"), power === "on");
  pressed(document.getElementById("board-off"), power === "off");
}

async function act(button, method, url, body, done) {
  if (busy) return;
  busy = true;
  card.setAttribute("aria-busy", "true");
  button.disabled = true;
  const answer = await send(method, url, body);
  button.disabled = false;
  busy = false;
  card.removeAttribute("aria-busy");
  if (answer.ok) {
    say("");
    done(answer.data);
  } else {
    say(answer.data.detail ? _(answer.data.detail) : _("The box did not answer."));
  }
}

function presetButton(name) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "big";
  button.dataset.preset = name;
  button.setAttribute("aria-pressed", "false");
  const label = document.createElement("bdi");
  label.textContent = name;
  button.append(label);
  button.addEventListener("click", () => act(button, "POST", `/api/room/presets/${encodeURIComponent(name)}`, undefined, () => showPreset(name)));
  return button;
}

function show(state) {
  const camera = state.camera;
  const display = state.display;
  document.getElementById("room-camera").hidden = !camera.available;
  document.getElementById("room-display").hidden = !display.available;
  card.hidden = !camera.available && !display.available;
  presets.replaceChildren(...camera.presets.map(presetButton));
  showPreset(camera.preset);
  showPower(display.power);
  const problem = camera.problem || display.problem;
  say(problem ? _(problem) : "");
}

async function start() {
  const answer = await send("GET", "/api/room");
  if (!answer.ok) return;
  show(answer.data);
  const on = document.getElementById("board-on");
  const off = document.getElementById("board-off");
  on.addEventListener("click", () => act(on, "POST", "/api/room/display", { on: true }, (data) => showPower(data.power)));
  off.addEventListener("click", () => act(off, "POST", "/api/room/display", { on: false }, (data) => showPower(data.power)));
  onBoxEvent("device.ptz", (data) => showPreset(data.preset));
  onBoxEvent("device.display", (data) => showPower(data.power));
  card.dataset.ready = "true";
}

await loadMessages();
await start();
