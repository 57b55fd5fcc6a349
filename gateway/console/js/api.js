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

export function signIn(value) { token = value.trim(); }
export function signOut() { token = ""; }
export function signedIn() { return token !== ""; }

// The token's scopes, read from its payload (the gateway verifies it on every call).
export function scopes() {
  try {
    const payload = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return String(payload.scope || "").split(" ");
  } catch {
    return [];
  }
}

let sequence = 0;

export async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["Idempotency-Key"] = `console-${Date.now()}-${++sequence}`;
  const reply = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit",
  });
  const text = await reply.text();
  const data = text ? JSON.parse(text) : {};
  if (!reply.ok) throw new ApiError(reply.status, data);
  return data;
}

export const get = (path) => api("GET", path);
