// HTTP to the llamaserve that served this page: JSON calls, the chat SSE stream, API-key header.
// URLs are relative so the UI also works behind a proxy that mounts the server under a prefix.

let apiKey = '';

export function setApiKey(key) {
  apiKey = key || '';
}

export class ApiError extends Error {
  constructor(status, message, type) {
    super(message);
    this.status = status;
    this.type = type || '';
  }
}

function headers(extra = {}) {
  const h = { ...extra };
  if (apiKey) h.Authorization = `Bearer ${apiKey}`;
  return h;
}

// llama-server's envelope is {"error": {"code", "message", "type"}}; anything else is shown as text.
async function errorFrom(res) {
  let message = res.statusText || `HTTP ${res.status}`;
  let type = '';
  try {
    const text = await res.text();
    try {
      const body = JSON.parse(text);
      const err = body.error ?? body;
      message = (typeof err === 'string' ? err : err.message) || text || message;
      type = err.type || '';
    } catch {
      if (text) message = text.slice(0, 500);
    }
  } catch {
    // body unreadable: keep the status text
  }
  return new ApiError(res.status, message, type);
}

async function request(path, init = {}) {
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, `cannot reach the server (${e.message})`, 'network_error');
  }
  if (!res.ok) throw await errorFrom(res);
  return res;
}

export async function getJSON(path, { signal } = {}) {
  const res = await request(path, { headers: headers(), signal });
  return res.json();
}

export async function postJSON(path, body, { signal } = {}) {
  const res = await request(path, {
    method: 'POST',
    headers: headers({ 'Content-Type': 'application/json' }),
    body: JSON.stringify(body),
    signal,
  });
  return res.json();
}

// Yields each `data:` payload of an SSE stream as parsed JSON, until `[DONE]` or the end of the body.
export async function* sseEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value.replace(/\r\n?/g, '\n');
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block
          .split('\n')
          .filter((line) => line.startsWith('data:'))
          .map((line) => line.slice(5).replace(/^ /, ''))
          .join('\n');
        if (!data) continue; // comment or keep-alive
        if (data === '[DONE]') return;
        const event = JSON.parse(data);
        if (event && event.error) {
          const err = event.error;
          throw new ApiError(err.code || 500, err.message || String(err), err.type);
        }
        yield event;
      }
    }
  } finally {
    reader.releaseLock();
  }
}

// POST /v1/chat/completions with stream: true; yields the chunks.
export async function* streamChat(body, signal) {
  const res = await request('v1/chat/completions', {
    method: 'POST',
    headers: headers({ 'Content-Type': 'application/json', Accept: 'text/event-stream' }),
    body: JSON.stringify(body),
    signal,
  });
  yield* sseEvents(res.body);
}
