// Pure chat logic: settings + history → request body, stream chunks → assistant message, stats text.
import { userContent } from './media.js';

export const SAMPLING_FIELDS = [
  // key in settings, request field, label, integer?
  { key: 'temperature', label: 'Temperature', int: false, min: 0 },
  { key: 'top_p', label: 'Top P', int: false, min: 0, max: 1 },
  { key: 'top_k', label: 'Top K', int: true, min: 0 },
  { key: 'min_p', label: 'Min P', int: false, min: 0, max: 1 },
  { key: 'max_tokens', label: 'Max tokens', int: true, min: -1, server: 'n_predict' },
  { key: 'seed', label: 'Seed', int: true, min: -1 },
];

// Fields the UI owns: the extra-JSON setting cannot replace them.
const RESERVED = new Set(['messages', 'stream', 'stream_options']);

export function newId() {
  return Date.now().toString(36) + Math.random().toString(36).slice(2, 10);
}

export function titleFrom(text) {
  const line = text.trim().split('\n')[0].trim();
  return line.length > 48 ? line.slice(0, 47) + '…' : line || 'New chat';
}

// Parses the sampling inputs: '' means "server default" and is left out of the request.
export function validateSettings(draft) {
  const errors = {};
  for (const f of SAMPLING_FIELDS) {
    const raw = String(draft[f.key] ?? '').trim();
    if (raw === '') continue;
    const value = Number(raw);
    if (!Number.isFinite(value)) errors[f.key] = 'must be a number';
    else if (f.int && !Number.isInteger(value)) errors[f.key] = 'must be a whole number';
    else if (f.min !== undefined && value < f.min) errors[f.key] = `must be at least ${f.min}`;
    else if (f.max !== undefined && value > f.max) errors[f.key] = `must be at most ${f.max}`;
  }
  const extra = String(draft.extra ?? '').trim();
  if (extra) {
    try {
      const parsed = JSON.parse(extra);
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) errors.extra = 'must be a JSON object';
    } catch (e) {
      errors.extra = `invalid JSON: ${e.message}`;
    }
  }
  return errors;
}

function historyMessages(settings, messages) {
  const out = [];
  if (settings.systemPrompt && settings.systemPrompt.trim()) out.push({ role: 'system', content: settings.systemPrompt });
  for (const m of messages) {
    if (m.role === 'user') out.push({ role: 'user', content: userContent(m) });
    else if (m.role === 'assistant' && !m.error) {
      const msg = { role: 'assistant', content: m.content };
      if (m.toolCalls && m.toolCalls.length) {
        msg.tool_calls = m.toolCalls.map((c) => ({
          id: c.id,
          type: 'function',
          function: { name: c.name, arguments: c.arguments },
        }));
      }
      out.push(msg);
      // what each call gave back (run on the server, refused, or failed), right after the calls
      for (const c of m.toolCalls || []) {
        if (c.result !== undefined) out.push({ role: 'tool', tool_call_id: c.id, content: c.result });
      }
    }
  }
  return out;
}

// `tools`: function definitions the model may call (the server's /tools, when the settings allow them).
export function buildRequest(settings, messages, model, tools = []) {
  const body = {};
  const extra = String(settings.extra ?? '').trim();
  if (extra) {
    for (const [k, v] of Object.entries(JSON.parse(extra))) if (!RESERVED.has(k)) body[k] = v;
  }
  for (const f of SAMPLING_FIELDS) {
    const raw = String(settings[f.key] ?? '').trim();
    if (raw !== '') body[f.key] = Number(raw);
  }
  if (model) body.model = model;
  if (tools.length) body.tools = tools;
  body.messages = historyMessages(settings, messages);
  body.stream = true;
  body.stream_options = { include_usage: true };
  return body;
}

// Folds one chat.completion.chunk into the assistant message (returns a new object).
export function applyChunk(msg, chunk) {
  const next = { ...msg };
  const choice = chunk.choices && chunk.choices[0];
  if (choice) {
    const d = choice.delta || {};
    if (typeof d.content === 'string') next.content = (next.content || '') + d.content;
    if (typeof d.reasoning_content === 'string') next.reasoning = (next.reasoning || '') + d.reasoning_content;
    if (Array.isArray(d.tool_calls)) {
      const calls = (next.toolCalls || []).map((c) => ({ ...c }));
      for (const tc of d.tool_calls) {
        const i = Number.isInteger(tc.index) ? tc.index : calls.length;
        const call = calls[i] || (calls[i] = { id: '', name: '', arguments: '' });
        if (!call.id && !tc.id) call.id = `call_${newId()}`; // a tool message must name the call it answers
        if (tc.id) call.id = tc.id;
        if (tc.function) {
          if (tc.function.name) call.name += tc.function.name;
          if (typeof tc.function.arguments === 'string') call.arguments += tc.function.arguments;
        }
      }
      next.toolCalls = calls;
    }
    if (choice.finish_reason) next.finish = choice.finish_reason;
  }
  if (chunk.usage) next.usage = chunk.usage;
  if (chunk.timings) next.timings = chunk.timings;
  if (chunk.model) next.model = chunk.model;
  return next;
}

function round(x, digits = 1) {
  return Number(x).toFixed(digits);
}

// One line under a reply: token counts from `usage`, speeds from llama.cpp's `timings`.
export function statsText(msg) {
  const t = msg.timings;
  const u = msg.usage;
  const parts = [];
  const prompt = u ? u.prompt_tokens : t ? (t.prompt_n || 0) + (t.cache_n || 0) : null;
  if (prompt != null) {
    const cached = t && t.cache_n ? ` (${t.cache_n} cached)` : '';
    parts.push(`${prompt} prompt tokens${cached}`);
  }
  const generated = u ? u.completion_tokens : t ? t.predicted_n : null;
  if (generated != null) parts.push(`${generated} tokens`);
  if (t && t.predicted_per_second) parts.push(`${round(t.predicted_per_second)} tok/s`);
  if (t && t.prompt_per_second && t.prompt_n > 0) parts.push(`prompt ${round(t.prompt_per_second)} tok/s`);
  return parts.join(' · ');
}

// Server defaults from GET /props, keyed like the settings fields (shown as placeholders).
export function serverDefaults(props) {
  const p = (props && props.default_generation_settings && props.default_generation_settings.params) || {};
  const out = {};
  for (const f of SAMPLING_FIELDS) {
    const v = p[f.server || f.key];
    if (typeof v !== 'number') continue;
    if (f.key === 'seed' && (v === 4294967295 || v === -1)) out.seed = 'random';
    else out[f.key] = String(f.int ? v : Number(v.toPrecision(6)));
  }
  return out;
}

// A model entry's router status ("loaded", "unloaded", ...) or '' outside router mode.
export function modelStatus(entry) {
  const s = entry && entry.status;
  if (!s) return '';
  if (typeof s === 'string') return s;
  if (s.failed) return 'failed';
  return s.value || '';
}
