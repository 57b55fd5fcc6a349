// @ts-check
import { t } from "./i18n.js";
// The gateway's public HTTP API, called with the operator's token. The token lives in this
// module's memory only: never in storage or a cookie another site could ride.
let token = "";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

// Signed in by a pasted token (development), or by the company's identity provider: then the
// gateway's HttpOnly session cookie, which this page never reads, carries the sign-in.
let cookieSession = false;

export function signIn(value) { token = value.trim(); }
export function signOut() { token = ""; cookieSession = false; }
export function signedIn() { return token !== "" || cookieSession; }
export function useCookieSession() { cookieSession = true; }
export function byCookie() { return cookieSession; }

// What the signed-in operator may do (GET /v1/admin/me): their roles, and the needs beyond
// reading they allow ("program", "adjust", "finance", "admin"). Pages hide what is not allowed.
export let session = { user_id: "", roles: [], can: [], adjustment_limit: null };

export function setSession(next) {
  session = next;
  for (const need of ["program", "adjust", "simulate", "finance", "admin"]) document.body.classList.toggle(`can-${need}`, next.can.includes(need));
}

// One Idempotency-Key per intent (method, path and body): a retry of the same change, after a
// lost answer, a 5xx or a double click, sends the same key, so the gateway applies it once. The
// key is dropped once the API has answered for good (a success or a refusal); the same change
// made again on purpose afterwards is a new intent with a new key.
const keys = new Map();

function keyFor(intent) {
  if (!keys.has(intent)) {
    // getRandomValues, unlike randomUUID, also works on a console served over plain HTTP.
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    keys.set(intent, `console-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`);
  }
  return keys.get(intent);
}

function settled(reply, data) {
  return reply.status < 500 && !(reply.status === 409 && data.reason === "REQUEST_IN_PROGRESS");
}

export async function api(method, path, body) {
  /** @type {Record<string, string>} */
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const intent = `${method} ${path}\n${payload ?? ""}`;
  if (method !== "GET") headers["Idempotency-Key"] = keyFor(intent);
  // A pasted token goes alone; a session cookie only ever to this origin.
  const reply = await fetch(path, { method, headers, body: payload, credentials: cookieSession ? "same-origin" : "omit" });
  const text = await reply.text();
  const data = text ? JSON.parse(text) : {};
  if (method !== "GET" && settled(reply, data)) keys.delete(intent);
  if (!reply.ok) throw new ApiError(reply.status, data);
  if (reply.status === 202) notify(t("sentForApproval"), `#/approvals`);
  return data;
}

export const get = (path) => api("GET", path);

// A notice above the page (a change sent for approval), with a link to follow it.
function notify(text, href) {
  const box = document.getElementById("notice");
  box.replaceChildren(text, " ", Object.assign(document.createElement("a"), { href, textContent: t("open") }));
  box.hidden = false;
}
