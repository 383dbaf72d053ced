// The message box: Enter sends, Shift+Enter adds a line; Stop replaces Send while a reply streams.
import { useEffect, useRef, useState } from 'preact/hooks';

export function Composer({ busy, disabled, onSend, onStop }) {
  const [text, setText] = useState('');
  const ref = useRef(null);

  // Grow with the text up to the CSS max-height, then scroll.
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    el.style.height = 'auto';
    el.style.height = `${el.scrollHeight}px`;
  }, [text]);

  const send = () => {
    if (busy || disabled || !text.trim()) return;
    onSend(text);
    setText('');
  };

  return (
    <form
      class="composer"
      onSubmit={(e) => {
        e.preventDefault();
        send();
      }}
    >
      <textarea
        ref={ref}
        rows={1}
        aria-label="Message"
        placeholder="Type a message…"
        title="Enter sends, Shift+Enter starts a new line"
        value={text}
        onInput={(e) => setText(e.currentTarget.value)}
        onKeyDown={(e) => {
          if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
            e.preventDefault();
            send();
          }
        }}
      />
      {busy ? (
        <button type="button" class="stop" onClick={onStop}>
          Stop
        </button>
      ) : (
        <button type="submit" class="primary" disabled={disabled || !text.trim()}>
          Send
        </button>
      )}
    </form>
  );
}
