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
  if (err) throw new HubError(resp.status, err.code, err.message, err.detail);
  throw new HubError(resp.status, "http", `the hub answered ${resp.status} ${resp.statusText}`);
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
        headers: { "content-type": xhr.getResponseHeader("content-type") || "" },
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
