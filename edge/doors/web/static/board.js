// The board page: the item the teacher opened from the panel, under an ink layer drawn with pointer
// events (pen, touch, mouse). Strokes are drawn here at once and sent to the box in small batches
// (POST /api/board/ink), which simplifies them and hands them to students and the recording; the
// pen's strokes and other boards' come back on /api/events. Every string goes through `_()`.
import { byId, post } from "/static/common.js";
import { _, format, loadMessages } from "/static/i18n.js";
import { InkLayer } from "/static/board-ink.js";
import { pinScreen } from "/static/panel/pin.js";

await loadMessages();

const SEND_EVERY_MS = 40;
const WIDTHS = { pen: 0.003, highlighter: 0.02, eraser: 0.03 };

function boardScreen() {
  const ink = new InkLayer(byId("ink"));
  const pen = { colour: "#1a1a1a", tool: "pen" };
  const drawing = new Map(); // pointerId -> { id, began }
  let queue = [];
  let sending = false;
  let counter = 0;

  function showError(text) {
    byId("board-error").textContent = text;
    byId("board-error").hidden = !text;
  }

  function showPageNumber(page) {
    const count = page ? page.count : 1;
    const index = page ? page.index : 0;
    byId("page-number").textContent = count > 1 ? format(_("Page {number} of {count}"), { number: index + 1, count }) : "";
    byId("previous").disabled = index <= 0;
    byId("next").disabled = index >= count - 1;
  }
  ink.onPage = showPageNumber;

  async function flush() {
    if (sending || !queue.length) return;
    const ops = queue.splice(0, 200);
    sending = true;
    try {
      const answer = await post("/api/board/ink", { ops });
      showError(answer.ok ? "" : _("The board did not take that stroke"));
      if (!answer.ok) resync(); // show what the box has, not what it refused
    } catch (_err) {
      showError(_("The box does not answer"));
    } finally {
      sending = false;
    }
  }
  setInterval(flush, SEND_EVERY_MS);

  function where(event) {
    const box = ink.canvas.getBoundingClientRect();
    const x = Math.min(1, Math.max(0, (event.clientX - box.left) / box.width));
    const y = Math.min(1, Math.max(0, (event.clientY - box.top) / box.height));
    return [x, y];
  }

  function point(event, began) {
    const [x, y] = where(event);
    const pressure = event.pointerType === "pen" ? event.pressure : 0.5;
    return [x, y, Math.max(0, (event.timeStamp - began) / 1000), Math.min(1, Math.max(0, pressure || 0.5))];
  }

  ink.canvas.addEventListener("pointerdown", (event) => {
    if (drawing.size && event.pointerType !== "touch") return;
    ink.canvas.setPointerCapture(event.pointerId);
    const tool = event.pointerType === "pen" && event.button === 5 ? "eraser" : pen.tool;
    const id = `b${Date.now().toString(36)}${(counter++).toString(36)}`;
    const began = event.timeStamp;
    const first = point(event, began);
    const stroke = { id, tool, color: pen.colour, width: WIDTHS[tool], points: [first], local: true };
    ink.strokes.set(id, stroke);
    drawing.set(event.pointerId, { id, began });
    queue.push({ op: "begin", id, tool, color: pen.colour, width: WIDTHS[tool], points: [first] });
    ink.render();
  });

  ink.canvas.addEventListener("pointermove", (event) => {
    const active = drawing.get(event.pointerId);
    if (!active) return;
    const samples = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
    const points = (samples.length ? samples : [event]).map((e) => point(e, active.began));
    ink.strokes.get(active.id).points.push(...points);
    queue.push({ op: "points", id: active.id, points });
    ink.render();
  });

  function lift(event) {
    const active = drawing.get(event.pointerId);
    if (!active) return;
    drawing.delete(event.pointerId);
    const stroke = ink.strokes.get(active.id);
    if (stroke) stroke.done = true;
    queue.push({ op: "end", id: active.id });
  }
  ink.canvas.addEventListener("pointerup", lift);
  ink.canvas.addEventListener("pointercancel", lift);

  for (const button of document.querySelectorAll(".colour")) {
    button.addEventListener("click", () => {
      pen.colour = button.dataset.colour;
      if (pen.tool === "eraser") choose("pen");
      for (const other of document.querySelectorAll(".colour")) {
        other.classList.toggle("on", other === button);
        other.setAttribute("aria-pressed", String(other === button));
      }
    });
  }
  function choose(tool) {
    pen.tool = tool;
    byId("ink").dataset.tool = tool;
    for (const other of document.querySelectorAll(".tool")) {
      other.classList.toggle("on", other.dataset.tool === tool);
      other.setAttribute("aria-pressed", String(other.dataset.tool === tool));
    }
  }
  for (const button of document.querySelectorAll(".tool")) button.addEventListener("click", () => choose(button.dataset.tool));

  byId("undo").addEventListener("click", () => queue.push({ op: "undo" }));
  byId("clear").addEventListener("click", () => queue.push({ op: "clear" }));
  async function turn(step) {
    if (!ink.page) return;
    await flush();
    const answer = await post("/api/board/page", { index: ink.page.index + step });
    if (!answer.ok) showError(_("There is no such page"));
  }
  byId("previous").addEventListener("click", () => turn(-1));
  byId("next").addEventListener("click", () => turn(1));

  async function resync() {
    const answer = await fetch("/api/board");
    if (!answer.ok) return;
    const state = await answer.json();
    ink.apply({ type: "board.state", reset: true, ...state });
  }

  const events = new EventSource("/api/events");
  const topics = ["board.stroke.begin", "board.stroke.points", "board.stroke.end", "board.undo", "board.clear", "board.page"];
  for (const topic of topics) {
    events.addEventListener(topic, (event) => ink.apply({ ...JSON.parse(event.data), type: topic }));
  }
  events.addEventListener("state", resync); // each (re)connection starts with `state`: catch up on what was missed
  showPageNumber(null);
  resync();
  window.classboxBoard = { ink, events, flush }; // for tests and debugging
}

if (byId("pin-form")) pinScreen();
else boardScreen();
