// Settings dialog: system prompt, sampling fields (blank = the server's default from /props),
// free-form JSON of extra native request fields, and the API key.
import { useEffect, useState } from 'preact/hooks';
import { SAMPLING_FIELDS, validateSettings } from '../chat.js';
import { DEFAULT_SETTINGS } from '../storage.js';

export function Settings({ settings, defaults, apiKey, toolCount = 0, onSave, onClose }) {
  const [draft, setDraft] = useState({ ...settings });
  const [key, setKey] = useState(apiKey);
  const [errors, setErrors] = useState({});

  useEffect(() => {
    const onKey = (e) => e.key === 'Escape' && onClose();
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [onClose]);

  const set = (name) => (e) => setDraft({ ...draft, [name]: e.currentTarget.value });
  const save = (e) => {
    e.preventDefault();
    const errs = validateSettings(draft);
    setErrors(errs);
    if (Object.keys(errs).length === 0) onSave(draft, key.trim());
  };
  const reset = () =>
    setDraft({ ...DEFAULT_SETTINGS, systemPrompt: draft.systemPrompt, useTools: draft.useTools, autoAllowTools: draft.autoAllowTools });

  return (
    <div class="modal-back" onClick={(e) => e.target === e.currentTarget && onClose()}>
      <form class="modal settings" role="dialog" aria-modal="true" aria-label="Settings" onSubmit={save}>
        <h2>Settings</h2>
        <label class="field wide">
          System prompt
          <textarea id="set-systemPrompt" rows={3} value={draft.systemPrompt} onInput={set('systemPrompt')} />
        </label>
        <div class="grid">
          {SAMPLING_FIELDS.map((f) => (
            <label class="field" key={f.key}>
              {f.label}
              <input
                id={`set-${f.key}`}
                type="text"
                inputmode={f.int ? 'numeric' : 'decimal'}
                placeholder={defaults[f.key] !== undefined ? `default: ${defaults[f.key]}` : 'server default'}
                value={draft[f.key]}
                onInput={set(f.key)}
                aria-invalid={errors[f.key] ? 'true' : undefined}
              />
              {errors[f.key] ? <span class="field-error">{errors[f.key]}</span> : null}
            </label>
          ))}
        </div>
        <label class="field wide">
          Extra request fields (JSON object of native llama.cpp fields, e.g. repeat_penalty, grammar)
          <textarea
            id="set-extra"
            rows={4}
            spellcheck={false}
            placeholder='{"repeat_penalty": 1.1, "dry_multiplier": 0.8}'
            value={draft.extra}
            onInput={set('extra')}
            aria-invalid={errors.extra ? 'true' : undefined}
          />
          {errors.extra ? <span class="field-error">{errors.extra}</span> : null}
        </label>
        <fieldset class="field wide tools-settings">
          <legend>Server tools ({toolCount ? `${toolCount} on this server` : 'none on this server'})</legend>
          <label class="check">
            <input
              id="set-useTools"
              type="checkbox"
              checked={draft.useTools !== false}
              onChange={(e) => setDraft({ ...draft, useTools: e.currentTarget.checked })}
            />
            Let the model call them
          </label>
          <label class="check">
            <input
              id="set-autoAllowTools"
              type="checkbox"
              checked={!!draft.autoAllowTools}
              onChange={(e) => setDraft({ ...draft, autoAllowTools: e.currentTarget.checked })}
            />
            Run every call without asking (they can change files and run commands on the server)
          </label>
        </fieldset>
        <label class="field wide">
          API key (sent as a Bearer token; needed when the server runs with --api-key)
          <input id="set-apiKey" type="password" autocomplete="off" value={key} onInput={(e) => setKey(e.currentTarget.value)} />
        </label>
        <div class="modal-actions">
          <button type="button" onClick={reset}>
            Reset sampling to server defaults
          </button>
          <span class="spacer" />
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" class="primary">
            Save
          </button>
        </div>
      </form>
    </div>
  );
}
