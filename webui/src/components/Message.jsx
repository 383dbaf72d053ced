// One chat message: markdown for the assistant, plain text for the user, with its actions and stats.
import { useMemo, useState } from 'preact/hooks';
import { statsText } from '../chat.js';
import { copyText } from '../clipboard.js';
import { renderMarkdown } from '../markdown.js';
import { KeyForm } from './KeyForm.jsx';

function prettyArguments(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

const CALL_STATUS = {
  pending: 'waiting for your permission',
  allowed: 'allowed',
  running: 'running…',
  done: 'done',
  error: 'failed',
  denied: 'denied',
};

function ToolCalls({ calls, canDecide, onDecide }) {
  return (
    <div class="tool-calls">
      {calls.map((c, i) => (
        <div class={`tool-call${c.status ? ` ${c.status}` : ''}`} key={c.id || i} data-status={c.status || ''}>
          <div class="tool-call-name">
            Tool call: <code>{c.name || '(unnamed)'}</code>
            {c.status ? <span class="tool-call-status">{CALL_STATUS[c.status] || c.status}</span> : null}
          </div>
          {c.arguments ? <pre class="tool-call-args">{prettyArguments(c.arguments)}</pre> : null}
          {c.status === 'pending' && canDecide ? (
            <div class="tool-call-actions">
              <button type="button" class="primary" onClick={() => onDecide(i, true)}>
                Allow
              </button>
              <button type="button" onClick={() => onDecide(i, false)}>
                Deny
              </button>
            </div>
          ) : null}
          {c.result !== undefined && c.status !== 'denied' ? (
            <details class="tool-call-result">
              <summary>Result</summary>
              <pre>{c.result}</pre>
            </details>
          ) : null}
        </div>
      ))}
    </div>
  );
}

function CopyButton({ text, label = 'Copy' }) {
  const [done, setDone] = useState(false);
  const onClick = async () => {
    if (await copyText(text)) {
      setDone(true);
      setTimeout(() => setDone(false), 1500);
    }
  };
  return (
    <button type="button" class="link" onClick={onClick}>
      {done ? 'Copied' : label}
    </button>
  );
}

export function Message({ msg, isLast, busy, onRegenerate, onEditSend, onSaveKey, onDecide }) {
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState('');
  const assistant = msg.role === 'assistant';
  const html = useMemo(() => (assistant ? renderMarkdown(msg.content) : ''), [assistant, msg.content]);
  const stats = assistant && !msg.pending ? statsText(msg) : '';
  const thinking = msg.pending && !msg.content;

  const startEdit = () => {
    setDraft(msg.content);
    setEditing(true);
  };
  const sendEdit = () => {
    if (!draft.trim()) return;
    setEditing(false);
    onEditSend(msg.id, draft);
  };

  return (
    <article class={`msg ${msg.role}${msg.pending ? ' pending' : ''}`} data-role={msg.role}>
      {assistant && msg.reasoning ? (
        <details class="reasoning" open={thinking}>
          <summary>{thinking ? 'Thinking…' : 'Reasoning'}</summary>
          <div class="reasoning-body">{msg.reasoning}</div>
        </details>
      ) : null}

      {editing ? (
        <div class="edit">
          <textarea
            aria-label="Edit message"
            value={draft}
            onInput={(e) => setDraft(e.currentTarget.value)}
            onKeyDown={(e) => {
              if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
                e.preventDefault();
                sendEdit();
              } else if (e.key === 'Escape') setEditing(false);
            }}
          />
          <div class="edit-actions">
            <button type="button" class="primary" onClick={sendEdit} disabled={busy || !draft.trim()}>
              Send
            </button>
            <button type="button" onClick={() => setEditing(false)}>
              Cancel
            </button>
          </div>
        </div>
      ) : assistant ? (
        <div class="content markdown" dangerouslySetInnerHTML={{ __html: html }} />
      ) : (
        <div class="content user-text">{msg.content}</div>
      )}
      {msg.attachments && msg.attachments.length ? (
        <div class="msg-attachments">
          {msg.attachments.map((a, i) =>
            a.kind === 'image' ? (
              <img key={i} src={a.url} alt={a.name} title={a.name} />
            ) : (
              <audio key={i} controls src={a.url} title={a.name} />
            ),
          )}
        </div>
      ) : null}

      {assistant && msg.toolCalls && msg.toolCalls.length ? (
        <ToolCalls calls={msg.toolCalls} canDecide={isLast && !busy} onDecide={(i, allow) => onDecide && onDecide(msg.id, i, allow)} />
      ) : null}
      {thinking && !msg.reasoning ? <div class="typing" aria-label="Generating">…</div> : null}

      {msg.error ? (
        <div class="error" role="alert">
          <strong>Error{msg.errorStatus ? ` ${msg.errorStatus}` : ''}:</strong> {msg.error}
          {msg.errorStatus === 401 ? <KeyForm onSave={onSaveKey} /> : null}
        </div>
      ) : null}

      {!editing && !msg.pending ? (
        <footer class="msg-footer">
          {stats ? <span class="stats">{stats}</span> : null}
          {msg.stopped ? <span class="note">stopped</span> : null}
          {msg.finish === 'length' ? <span class="note">reached the token limit</span> : null}
          <span class="actions">
            {msg.content ? <CopyButton text={msg.content} /> : null}
            {assistant && isLast && !busy ? (
              <button type="button" class="link" onClick={onRegenerate}>
                Regenerate
              </button>
            ) : null}
            {!assistant && !busy ? (
              <button type="button" class="link" onClick={startEdit}>
                Edit
              </button>
            ) : null}
          </span>
        </footer>
      ) : null}
    </article>
  );
}
