// Browser persistence (localStorage): one key per conversation, settings, API key; JSON export/import.

import { newId, titleFrom } from './chat.js';

const CONV_PREFIX = 'llamaserve.conv.';
const SETTINGS_KEY = 'llamaserve.settings';
const API_KEY_KEY = 'llamaserve.apiKey';
const CURRENT_KEY = 'llamaserve.current';
const MODEL_KEY = 'llamaserve.model';
export const EXPORT_FORMAT = 'llamaserve-conversations';

export const DEFAULT_SETTINGS = {
  systemPrompt: '',
  temperature: '',
  top_p: '',
  top_k: '',
  min_p: '',
  max_tokens: '',
  seed: '',
  extra: '',
  useTools: true, // offer the server's tools (GET /tools) to the model when it has any
  autoAllowTools: false, // run each tool call without asking
};

function read(key, fallback) {
  try {
    const raw = localStorage.getItem(key);
    return raw == null ? fallback : JSON.parse(raw);
  } catch {
    return fallback;
  }
}

// Throws (QuotaExceededError) so the caller can tell the user that nothing was saved.
function write(key, value) {
  localStorage.setItem(key, JSON.stringify(value));
}

export function loadConversations() {
  const out = [];
  for (let i = 0; i < localStorage.length; i++) {
    const key = localStorage.key(i);
    if (!key || !key.startsWith(CONV_PREFIX)) continue;
    const conv = normalizeConversation(read(key, null));
    if (conv) out.push(conv);
  }
  return sortConversations(out);
}

export function sortConversations(list) {
  return [...list].sort((a, b) => b.updatedAt - a.updatedAt);
}

export function saveConversation(conv) {
  write(CONV_PREFIX + conv.id, conv);
}

export function deleteConversation(id) {
  localStorage.removeItem(CONV_PREFIX + id);
}

export function loadSettings() {
  return { ...DEFAULT_SETTINGS, ...read(SETTINGS_KEY, {}) };
}

export function saveSettings(settings) {
  write(SETTINGS_KEY, settings);
}

export const loadApiKey = () => read(API_KEY_KEY, '');
export const saveApiKey = (key) => (key ? write(API_KEY_KEY, key) : localStorage.removeItem(API_KEY_KEY));
export const loadCurrentId = () => read(CURRENT_KEY, null);
export const saveCurrentId = (id) => (id ? write(CURRENT_KEY, id) : localStorage.removeItem(CURRENT_KEY));
export const loadModel = () => read(MODEL_KEY, '');
export const saveModel = (id) => write(MODEL_KEY, id || '');

// Accepts anything that looks like a conversation; returns a clean copy or null.
export function normalizeConversation(raw) {
  if (!raw || typeof raw !== 'object' || !Array.isArray(raw.messages)) return null;
  const messages = [];
  for (const m of raw.messages) {
    if (!m || (m.role !== 'user' && m.role !== 'assistant') || typeof m.content !== 'string') continue;
    const msg = { id: typeof m.id === 'string' ? m.id : newId(), role: m.role, content: m.content };
    for (const k of ['reasoning', 'error', 'finish', 'model']) if (typeof m[k] === 'string') msg[k] = m[k];
    if (m.stopped === true) msg.stopped = true;
    if (Array.isArray(m.toolCalls)) {
      msg.toolCalls = m.toolCalls
        .filter((c) => c && typeof c.name === 'string')
        .map((c) => {
          const call = { id: String(c.id || ''), name: c.name, arguments: String(c.arguments ?? '') };
          // a call's outcome goes back to the model with the next message: kept across reloads
          if (typeof c.result === 'string') call.result = c.result;
          if (typeof c.status === 'string') call.status = c.status;
          if (call.status === 'running' || call.status === 'allowed') {
            // the page went away while it ran: the model hears that it did not finish
            call.status = 'error';
            call.result = 'Error: the call was interrupted (the page was closed or reloaded)';
          }
          return call;
        });
    }
    for (const k of ['usage', 'timings']) if (m[k] && typeof m[k] === 'object') msg[k] = m[k];
    if (Array.isArray(m.attachments)) {
      // only data: URLs of images and audio: an imported chat must not make the page fetch anything
      const kept = m.attachments.filter(
        (a) => a && (a.kind === 'image' || a.kind === 'audio') && typeof a.url === 'string' && a.url.startsWith(`data:${a.kind}/`),
      );
      if (kept.length) msg.attachments = kept.map((a) => ({ kind: a.kind, name: String(a.name || ''), type: String(a.type || ''), url: a.url }));
    }
    messages.push(msg);
  }
  const firstUser = messages.find((m) => m.role === 'user');
  const now = Date.now();
  return {
    id: typeof raw.id === 'string' && raw.id ? raw.id : newId(),
    title: typeof raw.title === 'string' && raw.title.trim() ? raw.title : titleFrom(firstUser ? firstUser.content : ''),
    createdAt: Number.isFinite(raw.createdAt) ? raw.createdAt : now,
    updatedAt: Number.isFinite(raw.updatedAt) ? raw.updatedAt : now,
    messages,
  };
}

export function exportJSON(conversations) {
  return JSON.stringify({ format: EXPORT_FORMAT, version: 1, conversations }, null, 2);
}

// Parses an export file (or a bare array, or one conversation). Ids already present get new ones.
export function parseImport(text, existingIds) {
  const data = JSON.parse(text);
  const list = Array.isArray(data) ? data : Array.isArray(data && data.conversations) ? data.conversations : [data];
  const taken = new Set(existingIds);
  const out = [];
  for (const raw of list) {
    const conv = normalizeConversation(raw);
    if (!conv) continue;
    if (taken.has(conv.id)) conv.id = newId();
    taken.add(conv.id);
    out.push(conv);
  }
  if (!out.length) throw new Error('no conversations found in this file');
  return out;
}
