// What the pages' scripts share: requests to the box's JSON API and small DOM helpers.

// A request to the box: `body`, when given, goes as JSON; `headers` are added (the admin pages' CSRF token).
// The answer is {ok, status, data}: `data` is the answer's JSON, or {} when it has none.
export async function api(method, url, body, headers = {}) {
  const init = { method, headers: { ...headers }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const answer = await fetch(url, init);
  const data = await answer.json().catch(() => ({}));
  return { ok: answer.ok, status: answer.status, data };
}

// POST `body` (an empty object when none) as JSON.
export function post(url, body) {
  return api("POST", url, body || {});
}

export function byId(id) {
  return document.getElementById(id);
}

// A new element: `attributes` as attributes (`text` is its text; false, null and undefined leave one out,
// true sets it empty), then `children` (nodes or strings; null, undefined and false are left out).
export function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (key === "text") element.textContent = value;
    else element.setAttribute(key, value === true ? "" : String(value));
  }
  element.append(...children.filter((child) => child !== false && child !== null && child !== undefined));
  return element;
}
