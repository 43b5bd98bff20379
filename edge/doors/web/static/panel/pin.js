// The teacher PIN screen the panel and the board share (templates/panel/_pin.html): the PIN opens this
// browser's teacher session (POST /api/panel/session) and the page reloads as the teacher's; a wrong one
// says so and the field is ready for the next try.
import { _ } from "/static/i18n.js";

const el = (id) => document.getElementById(id);

async function openSession(pin) {
  const answer = await fetch("/api/panel/session", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ pin }),
  });
  const data = await answer.json().catch(() => ({}));
  return { ok: answer.ok, data };
}

export function pinScreen() {
  el("pin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const answer = await openSession(el("pin").value);
    if (answer.ok) {
      window.location.reload();
      return;
    }
    const locked = /too many/i.test(String(answer.data.detail || ""));
    el("pin-error").textContent = locked ? _("Too many wrong PINs: try again in a few minutes") : _("Wrong PIN");
    el("pin-error").hidden = false;
    el("pin").value = "";
    el("pin").focus();
  });
  el("pin").focus();
}
