// The dashboard's "What needs fixing" section: the doctor's findings (GET /api/admin/doctor), already in the
// page's language, each with its fix; refreshed every minute while the page is open.
const list = document.getElementById("doctor-findings");
const none = document.getElementById("doctor-none");
const REFRESH_MS = 60000;

function finding(item) {
  const entry = document.createElement("li");
  entry.dataset.area = item.area;
  entry.dataset.key = item.key;
  const problem = document.createElement("strong");
  problem.textContent = item.problem;
  const fix = document.createElement("span");
  fix.className = "fix";
  fix.textContent = item.fix;
  entry.append(problem, fix);
  return entry;
}

async function refresh() {
  const answer = await fetch("/api/admin/doctor", { credentials: "same-origin" });
  if (!answer.ok) return;
  const found = await answer.json();
  list.replaceChildren(...found.map(finding));
  none.hidden = found.length > 0;
  list.dataset.ready = "true";
}

if (list) {
  refresh();
  setInterval(refresh, REFRESH_MS);
}
