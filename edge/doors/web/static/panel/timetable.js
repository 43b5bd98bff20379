// The panel's timetable card: today's scheduled lessons with their state, the next lesson's join link
// ahead of time ("starting in 5 min" before it), and the live scheduled lesson's +5/+10 min and stop early.
import { byId, el, post } from "/static/common.js";
import { _, format, language, loadMessages } from "/static/i18n.js";
import { onBoxEvent } from "/static/panel/events.js";

await loadMessages();

const state = { data: null, zone: undefined, skew: 0 };
window.classboxTimetable = state; // for tests and debugging

const STATES = {
  planned: () => _("Planned"),
  soon: () => _("Starting soon"),
  due: () => _("Starting"),
  live: () => _("Live now"),
  ended: () => _("Ended"),
  missed: () => _("Not held"),
};

function clockText(epoch) {
  const options = { hour: "2-digit", minute: "2-digit" };
  try {
    return new Intl.DateTimeFormat(language, { ...options, timeZone: state.zone }).format(new Date(epoch * 1000));
  } catch {
    return new Intl.DateTimeFormat(language, options).format(new Date(epoch * 1000));
  }
}

function boxNow() {
  return Date.now() / 1000 + state.skew; // the box's clock: the schedule follows it, not the tablet's
}

async function load() {
  const answer = await fetch("/api/timetable/today");
  if (!answer.ok) return;
  state.data = await answer.json();
  state.zone = state.data.time_zone || undefined;
  state.skew = state.data.now - Date.now() / 1000;
  render();
}

function lessonItem(lesson) {
  const item = document.createElement("li");
  item.className = `tt-lesson ${lesson.state}`;
  item.dataset.key = lesson.key;
  const when = document.createElement("span");
  when.className = "tt-time";
  when.textContent = `${clockText(lesson.start)}–${clockText(lesson.end)}`;
  const title = document.createElement("span");
  title.className = "tt-name";
  title.textContent = lesson.title;
  const badge = document.createElement("span");
  badge.className = "tt-state";
  badge.textContent = (STATES[lesson.state] || STATES.planned)();
  item.append(when, title, badge);
  return item;
}

function renderList(lessons) {
  const list = byId("tt-lessons");
  if (!lessons.length) {
    list.replaceChildren(el("li", { class: "empty", text: _("No lessons scheduled today") }));
    return;
  }
  list.replaceChildren(...lessons.map(lessonItem));
}

function renderNext(next, live) {
  byId("tt-next").hidden = !next || Boolean(live);
  if (!next || live) return;
  byId("tt-next-title").textContent = next.title;
  byId("tt-next-link").textContent = next.join_url;
  byId("tt-next-when").textContent = whenText(next);
}

function whenText(next) {
  const minutes = Math.ceil((next.start - boxNow()) / 60);
  if (minutes <= state.data.announce_minutes && minutes > 0) {
    return format(_("Starting in {minutes} min"), { minutes });
  }
  return format(_("Starts at {time}"), { time: clockText(next.start) });
}

function renderLive(live) {
  byId("tt-live").hidden = !live;
  if (live) byId("tt-live-end").textContent = format(_("{title} ends at {time}"), { title: live.title, time: clockText(live.end) });
}

function render() {
  const data = state.data;
  if (!data) return;
  const live = data.lessons.find((lesson) => lesson.state === "live");
  byId("tt-clock").hidden = data.clock_synchronised !== false;
  renderList(data.lessons);
  renderLive(live);
  renderNext(data.next, live);
}

async function act(url, body) {
  const answer = await post(url, body);
  const error = byId("tt-error");
  error.hidden = answer.ok;
  if (!answer.ok) error.textContent = _("The box did not take that; try again");
  await load();
}

byId("tt-extend-5").addEventListener("click", () => act("/api/timetable/extend", { minutes: 5 }));
byId("tt-extend-10").addEventListener("click", () => act("/api/timetable/extend", { minutes: 10 }));
byId("tt-stop").addEventListener("click", () => act("/api/timetable/stop"));
byId("tt-start").addEventListener("click", () => act("/api/timetable/start", { key: state.data?.next?.key || "" }));

for (const topic of ["timetable.changed", "timetable.soon", "lesson.started", "lesson.ended"]) {
  onBoxEvent(topic, () => load());
}
setInterval(() => {
  if (state.data?.next) byId("tt-next-when").textContent = whenText(state.data.next);
}, 15000);
await load();
