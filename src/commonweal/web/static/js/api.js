// Talking to the hub: JSON reads, member-signed reads, and signed events. Every failure
// becomes an Error whose message is the hub's own one-line explanation.

import { AUTH_HEADER, authHeader, signEvent } from "./sign.js";

export class HubError extends Error {
  constructor(status, code, message, detail) {
    super(message);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

async function answer(resp) {
  const type = resp.headers.get("content-type") || "";
  if (resp.ok) return type.includes("json") ? resp.json() : resp.text();
  let err = null;
  try {
    err = (await resp.json()).error;
  } catch {
    /* not our JSON error shape */
  }
  if (resp.status === 429) throw tooMany(resp, err);
  if (err) throw new HubError(resp.status, err.code, err.message, err.detail);
  throw new HubError(resp.status, "http", `the hub answered ${resp.status} ${resp.statusText}`);
}

// A 429 says when to come back (Retry-After, in seconds): the message says it in words,
// so a member knows that waiting, not changing anything, is what helps.
function tooMany(resp, err) {
  const seconds = Number.parseInt(resp.headers.get("retry-after") || "", 10);
  const base = err ? err.message : "the hub is busy with too many requests from here";
  let when = "";
  if (seconds > 0 && seconds < 120) when = ` Try again in ${seconds} second${seconds === 1 ? "" : "s"}.`;
  else if (seconds >= 120) when = ` Try again in about ${Math.round(seconds / 3600) || 1} hour(s).`;
  const error = new HubError(429, err ? err.code : "rate_limited", base + when, err ? err.detail : null);
  error.retryAfter = seconds > 0 ? seconds : null;
  return error;
}

/** GET a public route. */
export async function get(path) {
  return answer(await fetch(path, { headers: { Accept: "application/json" } }));
}

/** GET (or other method) signed by the member's key: the hub knows who asks. */
export async function signedFetch(key, path, { method = "GET", body, accept = "application/json" } = {}) {
  const headers = { Accept: accept, [AUTH_HEADER]: await authHeader(key, method, path) };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  return answer(await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) }));
}

/** POST a JSON document (a signed event, or a batch) to `path`. */
export async function post(path, doc, { onProgress } = {}) {
  if (!onProgress) {
    return answer(
      await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(doc) }),
    );
  }
  // fetch() reports no upload progress; XMLHttpRequest does.
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    xhr.setRequestHeader("Content-Type", "application/json");
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onload = () => {
      const resp = new Response(xhr.responseText, {
        status: xhr.status,
        headers: {
          "content-type": xhr.getResponseHeader("content-type") || "",
          "retry-after": xhr.getResponseHeader("retry-after") || "",
        },
      });
      answer(resp).then(resolve, reject);
    };
    xhr.onerror = () => reject(new HubError(0, "network", "the hub could not be reached"));
    xhr.send(JSON.stringify(doc));
  });
}

/** Sign one event as `key` and append it to the log. */
export async function act(key, kind, body) {
  return post("/api/v1/events", await signEvent(key, kind, body));
}
