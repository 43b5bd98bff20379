// The "Live to cloud" settings page's state section: what publishing to the cloud server does now,
// the last error in plain words (a refused token says so), and a check of the saved address and token.
import { _, format, formatNumber, loadMessages } from "/static/i18n.js";
import { adminApi } from "/static/admin-api.js";

const STATES = {
  off: () => _("Not publishing: no live lesson, or publishing to the cloud is off."),
  connecting: () => _("Connecting to the cloud server..."),
  publishing: () => _("Live to cloud: students beyond this room watch through the cloud server."),
  reconnecting: () => _("The lesson is not reaching the cloud server: reconnecting."),
  refused: () => _("The cloud server refused the token: check the token on this page."),
};

function show(status) {
  const state = document.getElementById("cloud-state");
  state.dataset.state = status.state;
  state.textContent = (STATES[status.state] || (() => status.state))();
  document.getElementById("cloud-error").textContent = status.error ? format(_("Last problem: {error}"), { error: status.error }) : "";
  document.getElementById("cloud-kbps").textContent = format(_("{kbps} kbit/s"), { kbps: formatNumber(Math.round(status.kbps || 0)) });
  document.getElementById("cloud-reconnects").textContent = formatNumber(status.reconnects || 0);
}

async function refresh() {
  const answer = await adminApi("GET", "/api/admin/cloud");
  if (answer.ok) show(answer.data);
}

async function check() {
  const result = document.getElementById("cloud-check-result");
  result.textContent = _("Checking...");
  result.dataset.ok = "";
  const answer = await adminApi("POST", "/api/admin/cloud/check");
  if (!answer.ok) {
    result.textContent = format(_("The check could not run (HTTP {status})."), { status: answer.status });
    return;
  }
  result.dataset.ok = answer.data.ok ? "yes" : "no";
  result.textContent = answer.data.ok
    ? _("It works: the cloud server took a test session with this address and token.")
    : format(_("It does not work: {error}"), { error: answer.data.error });
}

async function main() {
  await loadMessages();
  document.getElementById("cloud-check").addEventListener("click", check);
  await refresh();
  setInterval(refresh, 2000);
}

main();
