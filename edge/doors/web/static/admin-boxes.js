// The dashboard's list of the other boxes this box sees on the LAN (GET /api/admin/boxes), one per box id,
// each with a link to its admin page; looked at again every few seconds.
import { _, format, loadMessages } from "/static/i18n.js";

const REFRESH_MS = 5000;

function item(box) {
  const entry = document.createElement("li");
  entry.dataset.status = "ok";
  entry.dataset.box = box.id;
  const name = document.createElement("strong");
  const bdi = document.createElement("bdi");
  bdi.textContent = box.name || box.id;
  name.append(bdi);
  const where = document.createElement("span");
  where.className = "state";
  where.textContent = box.room ? format(_("Room {room}"), { room: box.room }) : "";
  const detail = document.createElement("span");
  detail.className = "detail";
  const link = document.createElement("a");
  link.href = box.admin_url;
  link.textContent = _("Admin page");
  const facts = document.createElement("bdi");
  facts.textContent = ` · ${box.id} · ${(box.addresses || []).join(", ")} · ${box.version}`;
  detail.append(link, facts);
  entry.append(name, where, detail);
  return entry;
}

async function refresh() {
  try {
    const answer = await fetch("/api/admin/boxes", { credentials: "same-origin" });
    if (!answer.ok) return;
    const data = await answer.json();
    document.getElementById("boxes").replaceChildren(...data.boxes.map(item));
    document.getElementById("boxes-off").hidden = data.discovering;
    document.getElementById("boxes-empty").hidden = !data.discovering || data.boxes.length > 0;
    document.getElementById("boxes").dataset.ready = "true";
  } catch (_err) {
    // the box is restarting: the next look will tell
  }
}

await loadMessages();
await refresh();
setInterval(refresh, REFRESH_MS);
