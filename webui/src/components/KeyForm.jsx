// Shown when the server answers 401: the key is kept in this browser and sent as a Bearer token.
import { useState } from 'preact/hooks';

export function KeyForm({ onSave }) {
  const [key, setKey] = useState('');
  const submit = (e) => {
    e.preventDefault();
    if (key.trim()) onSave(key.trim());
  };
  return (
    <form class="key-form" onSubmit={submit}>
      <label>
        API key
        <input
          type="password"
          name="api-key"
          autocomplete="off"
          placeholder="the server's --api-key"
          value={key}
          onInput={(e) => setKey(e.currentTarget.value)}
        />
      </label>
      <button type="submit" class="primary" disabled={!key.trim()}>
        Save key and retry
      </button>
    </form>
  );
}
