// The teacher PIN screen the panel and the board share (templates/panel/_pin.html): the PIN opens this
// browser's teacher session (POST /api/panel/session) and the page reloads as the teacher's; a wrong one
// says so and the field is ready for the next try.
import { byId, post } from "/static/common.js";
import { _ } from "/static/i18n.js";

export function pinScreen() {
  byId("pin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const answer = await post("/api/panel/session", { pin: byId("pin").value });
    if (answer.ok) {
      window.location.reload();
      return;
    }
    const locked = /too many/i.test(String(answer.data.detail || ""));
    byId("pin-error").textContent = locked ? _("Too many wrong PINs: try again in a few minutes") : _("Wrong PIN");
    byId("pin-error").hidden = false;
    byId("pin").value = "";
    byId("pin").focus();
  });
  byId("pin").focus();
}
