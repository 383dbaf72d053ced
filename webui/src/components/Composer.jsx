// The message box: Enter sends, Shift+Enter adds a line; Stop replaces Send while a reply streams.
// Where the model takes media (/props modalities), images (and audio) can be attached with the button,
// pasted or dropped; they go with the message as data: URLs.
import { useEffect, useRef, useState } from 'preact/hooks';
import { readAttachment } from '../media.js';

export function Composer({ busy, disabled, onSend, onStop, accept = '', onError = () => {} }) {
  const [text, setText] = useState('');
  const [attachments, setAttachments] = useState([]);
  const [dragging, setDragging] = useState(false);
  const ref = useRef(null);
  const fileRef = useRef(null);

  // Grow with the text up to the CSS max-height, then scroll.
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    el.style.height = 'auto';
    el.style.height = `${el.scrollHeight}px`;
  }, [text]);

  const add = async (files) => {
    for (const file of files) {
      try {
        const a = await readAttachment(file, accept);
        setAttachments((list) => [...list, a]);
      } catch (e) {
        onError(e.message || String(e));
      }
    }
  };

  const send = () => {
    if (busy || disabled || (!text.trim() && !attachments.length)) return;
    onSend(text, attachments);
    setText('');
    setAttachments([]);
  };

  const onPaste = (e) => {
    if (!accept) return;
    const files = [...(e.clipboardData?.files || [])];
    if (files.length) {
      e.preventDefault();
      add(files);
    }
  };

  const drop = accept
    ? {
        onDragOver: (e) => {
          e.preventDefault();
          setDragging(true);
        },
        onDragLeave: () => setDragging(false),
        onDrop: (e) => {
          e.preventDefault();
          setDragging(false);
          add([...(e.dataTransfer?.files || [])]);
        },
      }
    : {};

  return (
    <form
      class={`composer${dragging ? ' dragging' : ''}`}
      onSubmit={(e) => {
        e.preventDefault();
        send();
      }}
      {...drop}
    >
      {attachments.length ? (
        <div class="attachments" aria-label="Attachments">
          {attachments.map((a, i) => (
            <div class="attachment" key={i}>
              {a.kind === 'image' ? <img src={a.url} alt={a.name} /> : <span class="attachment-audio">♪ {a.name}</span>}
              <button
                type="button"
                class="icon"
                aria-label={`Remove ${a.name}`}
                onClick={() => setAttachments((list) => list.filter((_, j) => j !== i))}
              >
                ×
              </button>
            </div>
          ))}
        </div>
      ) : null}
      <div class="composer-row">
        {accept ? (
          <>
            <input
              ref={fileRef}
              type="file"
              accept={accept}
              multiple
              hidden
              data-testid="attach-input"
              onChange={(e) => {
                add([...e.currentTarget.files]);
                e.currentTarget.value = '';
              }}
            />
            <button type="button" class="icon attach" aria-label="Attach" title="Attach an image" onClick={() => fileRef.current.click()}>
              📎
            </button>
          </>
        ) : null}
        <textarea
          ref={ref}
          rows={1}
          aria-label="Message"
          placeholder="Type a message…"
          title="Enter sends, Shift+Enter starts a new line"
          value={text}
          onInput={(e) => setText(e.currentTarget.value)}
          onPaste={onPaste}
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
          <button type="submit" class="primary" disabled={disabled || (!text.trim() && !attachments.length)}>
            Send
          </button>
        )}
      </div>
    </form>
  );
}
