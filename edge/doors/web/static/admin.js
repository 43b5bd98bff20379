// The admin pages: the dashboard (health, graphs, sync bars), the generated settings forms, PINs, logs and
// maintenance. They use only the JSON API under /api/admin and update from /api/events when it is there.
import { _, format, language, loadMessages } from "/static/i18n.js";
import { adminApi } from "/static/admin-api.js";
import { el } from "/static/common.js";
import { lineChart } from "./admin-chart.js";
import { buildForm, showErrors } from "./admin-form.js";

const page = document.getElementById("page");
const numbers = new Intl.NumberFormat(language, { maximumFractionDigits: 1 });
const clock = new Intl.DateTimeFormat(language, { hour: "2-digit", minute: "2-digit" });
const clockSeconds = new Intl.DateTimeFormat(language, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const stamp = new Intl.DateTimeFormat(language, { dateStyle: "short", timeStyle: "medium" });

function bytes(count) {
  const units = [_("B"), _("KB"), _("MB"), _("GB"), _("TB")];
  let value = count || 0;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${numbers.format(value)} ${units[unit]}`;
}

// Live updates: the event stream when the box has one; `handler(topic, data)` for each event.
function subscribe(topics, handler) {
  if (!("EventSource" in window)) return;
  const source = new EventSource("/api/events");
  for (const topic of topics) source.addEventListener(topic, (event) => handler(topic, JSON.parse(event.data || "{}")));
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) source.close();
  });
}

// -- the dashboard ------------------------------------------------------------------------------------

const STATUS_WORDS = {
  ok: () => _("Working"),
  degraded: () => _("Working, with a problem"),
  down: () => _("Not working"),
  starting: () => _("Starting"),
  stopped: () => _("Stopped"),
};
const COMPONENT_WORDS = {
  daemon: () => _("Box software"),
  clock: () => _("Clock"),
  media: () => _("Lesson picture and sound"),
  stream: () => _("Live streaming"),
  recorder: () => _("Recorder"),
  courseware: () => _("Courseware cache"),
  discovery: () => _("Discovery on the network"),
  room: () => _("PTZ camera and room display"),
  uploads: () => _("Uploads"),
  history: () => _("Dashboard history"),
  web: () => _("Web pages"),
  console: () => _("Serial console"),
};
const OVERALL_WORDS = {
  ok: () => _("Everything is working."),
  degraded: () => _("The box works, but something needs attention."),
  down: () => _("Something is not working."),
  starting: () => _("The box is starting."),
};

function componentName(name) {
  if (name.startsWith("camera:")) return format(_("Camera “{name}”"), { name: name.slice(7) });
  if (name.startsWith("mic:")) return format(_("Microphone “{name}”"), { name: name.slice(4) });
  return (COMPONENT_WORDS[name] || (() => name))();
}

function showHealth(health) {
  document.getElementById("overall").textContent = (OVERALL_WORDS[health.status] || (() => health.status))();
  document.getElementById("overall").dataset.status = health.status;
  const list = document.getElementById("components");
  const alarms = Object.values(health.alarms || {}).map((message) => el("li", { class: "alarm", "data-status": "down" }, el("strong", { text: _(message) })));
  const rows = Object.entries(health.components).map(([name, component]) => {
    const words = (STATUS_WORDS[component.status] || (() => component.status))();
    const item = el("li", { "data-status": component.status, "data-component": name }, el("span", { class: "dot", "aria-hidden": "true" }), el("strong", {}, el("bdi", { text: componentName(name) })), el("span", { class: "state", text: words }));
    if (component.detail) item.append(el("span", { class: "detail", text: _(component.detail) }));
    return item;
  });
  list.replaceChildren(...alarms, ...rows);
}

function bar(id, value, max, text) {
  const element = document.getElementById(`${id}-bar`);
  element.max = Math.max(max, 1);
  element.value = Math.min(value, element.max);
  document.getElementById(`${id}-text`).textContent = text;
}

function showSync(data) {
  const uploads = data.uploads;
  const pending = uploads.upload_bytes_pending || 0;
  const sent = uploads.upload_bytes_sent || 0;
  bar("upload", sent, sent + pending, uploads.upload_queue ? format(_("{count} files waiting, {size} to send"), { count: uploads.upload_queue, size: bytes(pending) }) : _("Nothing waiting"));
  const pull = data.courseware;
  const pullText = pull.error ? _(pull.error) : pull.items ? format(_("{done} of {total} items in the cache"), { done: pull.items_complete, total: pull.items }) : _("No pull yet");
  bar("pull", pull.items_complete, pull.items, pullText);
  const budget = data.budget;
  if (budget && budget.cap_bytes) bar("data", budget.used_bytes, budget.cap_bytes, format(_("{used} of {cap}"), { used: bytes(budget.used_bytes), cap: bytes(budget.cap_bytes) }));
  else bar("data", 0, 1, budget ? format(_("{used} (no monthly cap)"), { used: bytes(budget.used_bytes) }) : _("Not known yet"));
}

const GRAPHS = [
  { title: () => _("CPU"), unit: "%", max: 100, series: [{ key: "cpu_pct", label: () => _("CPU") }] },
  { title: () => _("Memory"), unit: "%", max: 100, series: [{ key: "mem_pct", label: () => _("Memory") }] },
  { title: () => _("Disk"), unit: "%", max: 100, series: [{ key: "disk_pct", label: () => _("Disk") }] },
  { title: () => _("Link estimate"), unit: _("kbit/s"), series: [{ key: "link_kbps", label: () => _("internet link") }, { key: "viewer_kbps", label: () => _("viewers' links"), className: "second" }] },
  { title: () => _("Sync throughput"), unit: _("kbit/s"), series: [{ key: "sync_kbps", label: () => _("sync") }] },
  { title: () => _("Viewers"), unit: "", series: [{ key: "viewers", label: () => _("viewers") }] },
];
const history = { samples: [], interval: 60 };

function drawGraphs() {
  const end = Date.now() / 1000;
  const samples = history.samples.filter((s) => s.at >= end - 24 * 3600);
  // A box up for less than a day shows what it has across the whole graph.
  const start = samples.length ? Math.min(samples[0].at, end - Math.max(5 * history.interval, 10)) : end - 24 * 3600;
  document.getElementById("graphs-empty").hidden = samples.length > 0;
  const container = document.getElementById("graphs");
  const figures = GRAPHS.map((graph) => {
    const title = graph.unit ? `${graph.title()} (${graph.unit})` : graph.title();
    const legend = el("figcaption", {}, el("strong", { text: title }));
    const last = samples.at(-1);
    for (const line of graph.series) {
      const value = last && typeof last[line.key] === "number" ? numbers.format(last[line.key]) : "–";
      legend.append(el("span", { class: `key ${line.className || ""}`, text: `${line.label()}: ${value}` }));
    }
    return [graph, title, el("figure", { class: "graph", "data-graph": graph.series[0].key }, legend)];
  });
  container.replaceChildren(...figures.map(([, , figure]) => figure));
  for (const [graph, title, figure] of figures) {
    const style = getComputedStyle(figure);
    const width = figure.clientWidth - parseFloat(style.paddingInlineStart) - parseFloat(style.paddingInlineEnd);
    figure.append(lineChart({ samples, series: graph.series, start, end, max: graph.max, interval: history.interval, numberFormat: numbers, timeFormat: end - start < 900 ? clockSeconds : clock, label: title, width }));
  }
}

async function dashboard() {
  let pending = null;
  const refresh = async () => {
    const answer = await adminApi("GET", "/api/admin/dashboard");
    if (answer.ok) {
      showHealth(answer.data.health);
      showSync(answer.data);
    }
  };
  const soon = () => {
    clearTimeout(pending);
    pending = setTimeout(refresh, 500);
  };
  await refresh();
  const answer = await adminApi("GET", "/api/admin/history?hours=24");
  if (answer.ok) {
    history.samples = answer.data.samples;
    history.interval = answer.data.interval_s;
  }
  drawGraphs();
  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(drawGraphs, 200);
  });
  document.body.dataset.ready = "true";
  subscribe(["metrics.sample", "alarm.raised", "alarm.cleared", "device.status", "component.failed", "upload.progress", "upload.done", "upload.failed", "settings.changed", "lesson.started", "lesson.ended"], (topic, data) => {
    if (topic === "metrics.sample") {
      history.samples.push(data);
      drawGraphs();
    }
    soon();
  });
}

// -- settings -------------------------------------------------------------------------------------------

async function datalists(group) {
  if (group !== "devices") return {};
  const answer = await adminApi("GET", "/api/admin/devices");
  if (!answer.ok) return {};
  const lists = {};
  const make = (id, options) => {
    const list = el("datalist", { id }, ...options.map(([value, label]) => el("option", { value, label })));
    document.body.append(list);
    return id;
  };
  lists["cameras.device"] = make("found-cameras", answer.data.cameras.map((c) => [c.path, c.name || c.path]));
  lists["microphones.device"] = make("found-microphones", answer.data.microphones.map((m) => [m.name, m.name]));
  return lists;
}

async function settings(group) {
  const [schemaAnswer, valuesAnswer] = await Promise.all([adminApi("GET", "/api/admin/settings/schema"), adminApi("GET", `/api/admin/settings/${group}`)]);
  const lists = await datalists(group);
  const formElement = document.getElementById("settings");
  const fields = document.getElementById("fields");
  const status = document.getElementById("status");
  let form;
  const fill = (values) => {
    form = buildForm(schemaAnswer.data, values.group.paths, values.values, { secretsSet: values.secrets_set, hidden: ["web.teacher_pin_hash", "console.tech_pin_hash"], datalists: lists });
    fields.replaceChildren(...form.elements);
    form.read();
  };
  fill(valuesAnswer.data);
  formElement.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.textContent = _("Saving…");
    status.dataset.kind = "";
    const answer = await adminApi("PUT", `/api/admin/settings/${group}`, { values: form.read() });
    if (answer.status === 422 && answer.data.errors) {
      const unplaced = showErrors(fields, answer.data.errors);
      status.textContent = [_("Not saved: see the fields marked."), ...unplaced.map((e) => `${e.loc}: ${_(e.msg)}`)].join(" ");
      status.dataset.kind = "error";
      fields.querySelector(".invalid input, .invalid select, .invalid textarea")?.focus();
      return;
    }
    if (!answer.ok) {
      status.textContent = format(_("Not saved: {reason}"), { reason: (answer.data && answer.data.detail) || answer.status });
      status.dataset.kind = "error";
      return;
    }
    const saved = answer.data;
    const note = saved.restart_needed ? _("Some of these changes take effect after a restart (see Maintenance).") : _("Applied now.");
    status.textContent = `${format(_("Saved as version {version}."), { version: saved.version })} ${note}`;
    status.dataset.kind = "ok";
    const again = await adminApi("GET", `/api/admin/settings/${group}`);
    if (again.ok) fill(again.data);
  });
  if (group === "devices") deviceTest();
  document.body.dataset.ready = "true";
}

function deviceTest() {
  document.getElementById("test-devices").addEventListener("click", async () => {
    const results = document.getElementById("device-results");
    const devices = await adminApi("GET", "/api/admin/devices");
    if (!devices.ok) return;
    const cards = [];
    for (const camera of devices.data.configured.cameras) {
      const picture = el("img", { alt: format(_("Snapshot of camera “{name}”"), { name: camera.name }), src: `/api/admin/devices/cameras/${encodeURIComponent(camera.name)}/snapshot?at=${Date.now()}` });
      picture.addEventListener("error", () => picture.replaceWith(el("p", { class: "error", text: _("No picture from this camera.") })));
      cards.push(el("figure", { class: "device-card" }, picture, el("figcaption", { text: componentName(`camera:${camera.name}`) })));
    }
    for (const mic of devices.data.configured.microphones) {
      const answer = await adminApi("GET", `/api/admin/devices/microphones/${encodeURIComponent(mic.name)}/level`);
      const level = answer.ok && typeof answer.data.rms_dbfs === "number" ? answer.data.rms_dbfs : -100;
      const meter = el("meter", { min: -90, max: 0, low: -60, high: -6, optimum: -20, value: level });
      const words = answer.ok ? format(_("{level} dBFS"), { level: numbers.format(level) }) : _("No sound from this microphone.");
      cards.push(el("figure", { class: "device-card" }, meter, el("figcaption", { text: `${componentName(`mic:${mic.name}`)}: ${words}` })));
    }
    results.replaceChildren(...cards);
  });
}

// -- PINs, logs, maintenance ----------------------------------------------------------------------------

function pins() {
  for (const formElement of document.querySelectorAll(".pin-form")) {
    formElement.addEventListener("submit", async (event) => {
      event.preventDefault();
      const which = formElement.dataset.which;
      const input = formElement.querySelector("input");
      const error = formElement.querySelector(".error");
      const status = formElement.querySelector(".status");
      const answer = await adminApi("POST", "/api/admin/pins", { which, pin: input.value });
      error.textContent = "";
      if (answer.status === 422 && answer.data.errors) {
        error.textContent = answer.data.errors.map((e) => _(e.msg)).join(" ");
        status.textContent = "";
      } else if (answer.ok) {
        input.value = "";
        status.textContent = format(_("Saved as version {version}."), { version: answer.data.version });
      } else {
        error.textContent = format(_("Not saved: {reason}"), { reason: (answer.data && answer.data.detail) || answer.status });
      }
    });
  }
  document.body.dataset.ready = "true";
}

async function logs() {
  const formElement = document.getElementById("log-filter");
  const show = async () => {
    const query = new URLSearchParams({ contains: formElement.contains.value, level: formElement.level.value, limit: "500" });
    const answer = await adminApi("GET", `/api/admin/logs?${query}`);
    if (!answer.ok) return;
    const rows = answer.data.map((line) => el("tr", { "data-level": line.level }, el("td", { class: "time", text: stamp.format(new Date(line.at * 1000)) }), el("td", { class: "level", text: line.level }), el("td", { class: "name", text: line.name }), el("td", { class: "message", text: line.message })));
    document.querySelector("#log tbody").replaceChildren(...rows.reverse());
    document.getElementById("log-count").textContent = format(_("{count} lines, newest first"), { count: rows.length });
    document.getElementById("log").dataset.shown = query.toString();
  };
  formElement.addEventListener("submit", (event) => {
    event.preventDefault();
    show();
  });
  await show();
  document.body.dataset.ready = "true";
}

const NOTE_WORDS = {
  settings: (page) => format(_("Settings page “{page}”"), { page }),
  pin: (which) => (which === "teacher" ? _("Teacher PIN") : _("Technician PIN")),
  rollback: (version) => format(_("Rollback to version {version}"), { version }),
  file: () => _("The settings file before the first change from this page"),
};

function noteWords(note) {
  const [kind, subject] = (note || "").split(/:(.*)/s);
  return NOTE_WORDS[kind] ? NOTE_WORDS[kind](subject || "") : note;
}

async function configHistory() {
  const status = document.getElementById("history-status");
  const answer = await adminApi("GET", "/api/admin/config/history");
  if (!answer.ok) return;
  const rows = answer.data.map((version, index) => {
    const cell = el("td");
    if (index > 0) {
      const button = el("button", { type: "button", class: "rollback", "data-version": version.version, text: _("Roll back to this version") });
      button.addEventListener("click", async () => {
        if (!window.confirm(format(_("Make version {version} the current settings?"), { version: version.version }))) return;
        const done = await adminApi("POST", "/api/admin/config/rollback", { version: version.version });
        status.textContent = done.ok ? format(_("Version {old} is the current settings again (saved as version {version})."), { old: version.version, version: done.data.version }) : format(_("Not rolled back: {reason}"), { reason: (done.data && done.data.detail) || done.status });
        await configHistory();
      });
      cell.append(button);
    }
    const what = [noteWords(version.note), version.changed.join(", ")].filter(Boolean).join(": ");
    return el("tr", { "data-version": version.version }, el("td", { text: String(version.version) }), el("td", { text: version.at ? stamp.format(new Date(version.at * 1000)) : "" }), el("td", { text: version.by }), el("td", { class: "changed", text: what }), cell);
  });
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 5, class: "hint", text: _("No settings saved from these pages yet.") })));
  document.querySelector("#history tbody").replaceChildren(...rows);
}

async function maintenance() {
  const status = document.getElementById("restart-status");
  document.getElementById("restart").addEventListener("click", async () => {
    if (!window.confirm(_("Restart the box's software now? A live lesson ends."))) return;
    const answer = await adminApi("POST", "/api/admin/restart");
    if (!answer.ok) {
      status.textContent = format(_("Not restarted: {reason}"), { reason: (answer.data && answer.data.detail) || answer.status });
      return;
    }
    status.textContent = _("Restarting…");
    const asked = Date.now();
    for (let tries = 0; tries < 120; tries += 1) {
      await new Promise((done) => setTimeout(done, 1000));
      try {
        const again = await fetch("/api/admin/dashboard", { credentials: "same-origin" });
        // Back when the software answering has been up for less time than since the restart was asked for,
        // or when it no longer knows this session (a restart signs every admin out).
        if (again.status === 401 || (again.ok && (await again.json()).health.uptime_s < (Date.now() - asked) / 1000)) {
          status.textContent = _("The box is back.");
          return;
        }
      } catch (_err) {
        // still restarting
      }
    }
    status.textContent = _("The box has not come back yet: look at its screen or the serial console.");
  });
  await configHistory();
  document.body.dataset.ready = "true";
}

document.querySelector(".side [aria-current]")?.scrollIntoView({ block: "nearest", inline: "center" });
await loadMessages();
const pages = { dashboard, settings: () => settings(page.dataset.group), pins, logs, maintenance };
await (pages[page.dataset.page] || (() => {}))();
