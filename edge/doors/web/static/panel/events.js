// The panel's one live connection to the box (`/api/events`), shared by every card's script on the
// page: `onBoxEvent("lesson.started", (data) => ...)`. A browser allows few connections per host, so
// the cards never open their own.
let source = null;

export function boxEvents() {
  if (source === null) source = new EventSource("/api/events");
  return source;
}

export function onBoxEvent(topic, handle) {
  boxEvents().addEventListener(topic, (event) => handle(JSON.parse(event.data)));
}
