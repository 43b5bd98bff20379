// The admin timetable page: the sources' status, what tomorrow's lessons still lack, the coming days'
// lessons, and lessons added by hand (add, remove). Changes carry the session's CSRF token.
import { _, format, language, loadMessages } from "/static/i18n.js";
import { adminApi } from "/static/admin-api.js";
import { byId } from "/static/common.js";

await loadMessages();

const stamp = new Intl.DateTimeFormat(language, { dateStyle: "short", timeStyle: "short" });
const STATES = {
  planned: () => _("Planned"), soon: () => _("Starting soon"), due: () => _("Starting"), live: () => _("Live now"),
  ended: () => _("Ended"), missed: () => _("Not held"),
};
const SOURCES = { feed: () => _("iCalendar feed"), repo: () => _("File in the courseware"), manual: () => _("Added here") };
let zone;

function make(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function statusItem(status, text) {
  const item = make("li", status, text); // the dashboard's look: data-status colours the edge
  item.dataset.status = status;
  return item;
}

function when(epoch) {
  try {
    return new Intl.DateTimeFormat(language, { dateStyle: "short", timeStyle: "short", timeZone: zone }).format(new Date(epoch * 1000));
  } catch {
    return stamp.format(new Date(epoch * 1000));
  }
}

function renderSources(status) {
  const list = byId("tt-sources");
  const rows = Object.entries(status.sources);
  if (!rows.length) {
    list.replaceChildren(make("li", "hint", _("No feed or repository file yet: only lessons added here.")));
    return;
  }
  list.replaceChildren(...rows.map(([name, source]) => {
    const item = statusItem(source.error ? "degraded" : "ok");
    item.append(make("strong", "", (SOURCES[name] || (() => name))()), document.createTextNode(" "));
    const parts = [];
    if (source.stored) parts.push(format(_("{count} lessons in the coming weeks, accepted {time}"), { count: source.lessons, time: when(source.accepted_at) }));
    else parts.push(_("Nothing accepted yet"));
    if (source.checked_at) parts.push(format(_("asked {time}"), { time: when(source.checked_at) }));
    item.append(make("span", "detail", parts.join("; ")));
    if (source.error) item.append(make("span", "detail", format(_("Refused or unreachable, the last good timetable is kept: {error}"), { error: source.error })));
    return item;
  }));
}

function renderMissing(view) {
  const list = byId("tt-missing");
  if (view.missing_error) {
    list.replaceChildren(statusItem("degraded", view.missing_error));
    return;
  }
  if (!view.missing_tomorrow.length) {
    list.replaceChildren(statusItem("ok", _("Everything tomorrow's lessons need is here")));
    return;
  }
  list.replaceChildren(...view.missing_tomorrow.map((entry) => {
    const what = entry.unknown ? _("the course is not in the repository") : entry.items.join(", ");
    return statusItem("degraded", format(_("{lesson} ({course}): {what}"), { lesson: entry.lesson, course: entry.course, what }));
  }));
}

function lessonRow(lesson) {
  const row = make("tr", `tt-${lesson.state}`);
  row.append(make("td", "", when(lesson.start)), make("td", "", lesson.title), make("td", "", lesson.course || ""));
  row.append(make("td", "", lesson.teacher || ""), make("td", "", (STATES[lesson.state] || STATES.planned)()));
  row.append(make("td", "", (SOURCES[lesson.source] || (() => lesson.source))()));
  const cell = make("td");
  if (lesson.source === "manual") {
    const remove = make("button", "danger", _("Remove"));
    remove.type = "button";
    remove.addEventListener("click", async () => {
      await adminApi("DELETE", `/api/admin/timetable/lessons/${encodeURIComponent(lesson.key.split(":")[1])}`);
      await load();
    });
    cell.append(remove);
  }
  row.append(cell);
  return row;
}

function renderDays(days) {
  const tables = days.map((lessons, offset) => {
    const wrap = make("div", "log-wrap");
    const heading = make("h3", "", offset === 0 ? _("Today") : offset === 1 ? _("Tomorrow") : format(_("In {days} days"), { days: offset }));
    if (!lessons.length) return [heading, make("p", "hint", _("No lessons"))];
    const table = make("table", "history");
    const head = make("tr");
    for (const title of [_("Starts"), _("Lesson"), _("Course"), _("Teacher"), _("State"), _("From"), ""]) head.append(make("th", "", title));
    table.append(make("thead"), make("tbody"));
    table.tHead.append(head);
    table.tBodies[0].append(...lessons.map(lessonRow));
    wrap.append(table);
    return [heading, wrap];
  });
  byId("tt-days").replaceChildren(...tables.flat());
}

async function load() {
  const answer = await adminApi("GET", "/api/admin/timetable");
  if (!answer.ok) return;
  zone = answer.data.status.time_zone || undefined;
  byId("tt-clock").hidden = answer.data.status.clock_synchronised !== false;
  renderSources(answer.data.status);
  renderMissing(answer.data);
  renderDays(answer.data.days);
}

byId("tt-add").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const body = Object.fromEntries(form.entries());
  body.minutes = Number(body.minutes);
  const answer = await adminApi("POST", "/api/admin/timetable/lessons", body);
  const status = byId("tt-add-status");
  if (answer.ok) {
    status.textContent = _("Added");
    event.target.reset();
    await load();
  } else {
    const detail = answer.data && typeof answer.data.detail === "string" ? answer.data.detail : _("Check the fields");
    status.textContent = format(_("Not added: {reason}"), { reason: detail });
  }
});

byId("tt-refresh").addEventListener("click", async () => {
  const answer = await adminApi("POST", "/api/admin/timetable/refresh");
  byId("tt-refresh-status").textContent = answer.ok ? _("Asked; the page shows the answer in a moment") : _("Not asked");
  setTimeout(load, 1500);
});

await load();
