// Thin client of the demo's HTTP API. Every failure becomes an ApiError whose message is the server's
// `detail` (or a plain description of what went wrong), ready to show to a person.

export class ApiError extends Error {
  constructor(message, status = 0) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

/** The `detail` of an error response as one readable line. */
async function errorDetail(response) {
  let detail = "";
  try {
    const body = await response.json();
    detail = body.detail;
  } catch {
    detail = "";
  }
  if (Array.isArray(detail)) {
    // FastAPI validation errors: [{loc: [...], msg: "..."}]
    detail = detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
  } else if (detail && typeof detail !== "string") {
    detail = JSON.stringify(detail);
  }
  return detail || `${response.status} ${response.statusText || "error"}`.trim();
}

/** fetch() that throws an ApiError for network failures and non-2xx answers. */
export async function request(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(`Cannot reach the demo server (${err.message}). Is \`sam2 demo\` still running?`);
  }
  if (!response.ok) throw new ApiError(await errorDetail(response), response.status);
  return response;
}

export async function getJson(path) {
  return (await request(path)).json();
}

export async function sendJson(path, body, method = "POST") {
  const options = { method, headers: { "Content-Type": "application/json" } };
  if (body !== undefined) options.body = JSON.stringify(body);
  return (await request(path, options)).json();
}

export async function del(path) {
  return (await request(path, { method: "DELETE" })).json();
}

export const api = {
  info: () => getJson("/api/info"),
  openSample: (sampleId) => sendJson("/api/sessions", { sample: sampleId }),
  upload(file) {
    const form = new FormData();
    form.append("file", file, file.name);
    return request("/api/sessions", { method: "POST", body: form }).then((r) => r.json());
  },
  closeSession: (sid) => del(`/api/sessions/${sid}`),
  frameUrl: (sid, idx) => `/api/sessions/${sid}/frames/${idx}`,
  frameMasks: (sid, idx) => getJson(`/api/sessions/${sid}/frames/${idx}/masks`),
  addPrompts: (sid, body) => sendJson(`/api/sessions/${sid}/points`, body),
  addMask: (sid, body) => sendJson(`/api/sessions/${sid}/mask`, body),
  clearFrame: (sid, frame, objectId) =>
    sendJson(`/api/sessions/${sid}/clear_frame`, { frame, object_id: objectId }),
  removeObject: (sid, objectId) => del(`/api/sessions/${sid}/objects/${objectId}`),
  cancel: (sid) => sendJson(`/api/sessions/${sid}/cancel`, {}),
  everything: (sid, body) => sendJson(`/api/sessions/${sid}/everything`, body),
  exportUrl: (sid, format) => `/api/sessions/${sid}/export?format=${encodeURIComponent(format)}`,
  propagateUrl(sid, direction, startFrame) {
    const query = new URLSearchParams({ direction });
    if (startFrame !== null && startFrame !== undefined) query.set("start_frame", String(startFrame));
    return `/api/sessions/${sid}/propagate?${query}`;
  },
};

/**
 * Read a `text/event-stream` response and call onEvent(name, data) for each event (data parsed as
 * JSON). Resolves when the stream ends. fetch() rather than EventSource, so that an HTTP error keeps
 * its `detail`, the request can be aborted, and the browser never silently reconnects (which would
 * start the work again).
 */
export async function readEventStream(path, onEvent, signal) {
  const response = await request(path, { headers: { Accept: "text/event-stream" }, signal });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n?/g, "\n");
    let cut = buffer.indexOf("\n\n");
    while (cut >= 0) {
      dispatchBlock(buffer.slice(0, cut), onEvent);
      buffer = buffer.slice(cut + 2);
      cut = buffer.indexOf("\n\n");
    }
  }
  if (buffer.trim()) dispatchBlock(buffer, onEvent);
}

function dispatchBlock(block, onEvent) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue; // comment / keep-alive
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return;
  const text = data.join("\n");
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = text;
  }
  onEvent(name, parsed);
}
