// Server tools (GET/POST /tools) in the chat: which definitions go to the model, what a call's result
// tells it, and when the agent loop stops on its own. Pure; App.jsx does the I/O.

// Model turns in a row that may end in tool calls before the page stops continuing by itself.
export const MAX_TOOL_ROUNDS = 10;

// What the model is told when the user refuses a call.
export const DENIED_TEXT = 'The user denied this tool call.';

// GET /tools entries → the `tools` field of a chat request.
export function toolDefinitions(list) {
  return (list || []).map((t) => t.definition).filter((d) => d && d.type === 'function' && d.function && d.function.name);
}

export function toolByName(list, name) {
  return (list || []).find((t) => t.tool === name) || null;
}

// POST /tools answer → the text of the tool message: what the model reads.
export function resultText(result) {
  if (result && typeof result === 'object') {
    if (typeof result.error === 'string' || (result.error && typeof result.error === 'object')) {
      return `Error: ${typeof result.error === 'string' ? result.error : result.error.message || JSON.stringify(result.error)}`;
    }
    if (typeof result.plain_text_response === 'string') return result.plain_text_response;
  }
  return JSON.stringify(result);
}

// The arguments of a call as an object (the model sends them as JSON text); throws with a reason.
export function parseArguments(text) {
  if (!text || !text.trim()) return {};
  const value = JSON.parse(text);
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new Error('the arguments are not a JSON object');
  return value;
}

// A call has an outcome once it ran, failed or was denied; only then can the model go on.
export function settled(call) {
  return call.status === 'done' || call.status === 'error' || call.status === 'denied';
}

// How many assistant turns at the end of the conversation ended in tool calls (the current loop's length).
export function toolRounds(messages) {
  let n = 0;
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i];
    if (m.role !== 'assistant') break;
    if (!m.toolCalls || !m.toolCalls.length) break;
    n++;
  }
  return n;
}
