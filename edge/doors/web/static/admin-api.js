// The admin pages' requests (`common.js`'s `api`): each carries the admin session's CSRF token, asked for
// once per page; an answer that the session is gone (401) takes the browser to the sign-in page.
import { api } from "/static/common.js";

let token = null;

async function request(method, url, body, csrf) {
  const answer = await api(method, url, body, { "X-CSRF-Token": csrf });
  if (answer.status === 401) window.location.assign("/admin/login");
  return answer;
}

function csrf() {
  // no session (yet): the requests go without a token
  token ??= request("GET", "/api/admin/session", undefined, "").then((answer) => (answer.ok && answer.data ? answer.data.csrf || "" : ""), () => "");
  return token;
}

export async function adminApi(method, url, body) {
  return request(method, url, body, await csrf());
}
