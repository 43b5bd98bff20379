// The home page, live: when a lesson starts or ends (/api/events), the lesson section is rendered
// again by the box, in the page's language and with what this visitor may see (the join link only
// for the teacher). No text is made here.
const section = () => document.getElementById("lesson");

async function refresh() {
  const answer = await fetch(window.location.pathname, { cache: "no-store" }).catch(() => null);
  if (!answer || !answer.ok) return;
  const fresh = new DOMParser().parseFromString(await answer.text(), "text/html").getElementById("lesson");
  if (fresh) section().replaceWith(document.adoptNode(fresh));
  document.body.dataset.lesson = fresh && fresh.classList.contains("live") ? "live" : "idle";
}

const events = new EventSource("/api/events");
let first = true;
events.addEventListener("state", () => {
  if (!first) refresh(); // a reconnect: something may have changed while the stream was down
  first = false;
});
for (const topic of ["lesson.started", "lesson.ended"]) events.addEventListener(topic, refresh);
window.classboxHome = { events };
