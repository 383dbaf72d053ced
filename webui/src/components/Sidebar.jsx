// Conversation list: open, new, rename, delete; export and import as JSON.
import { useRef, useState } from 'preact/hooks';

function Item({ conv, active, onSelect, onRename, onDelete }) {
  const [renaming, setRenaming] = useState(false);
  const [title, setTitle] = useState(conv.title);

  const finish = (save) => {
    setRenaming(false);
    if (save && title.trim() && title.trim() !== conv.title) onRename(conv.id, title.trim());
  };

  if (renaming) {
    return (
      <li class="conv renaming">
        <input
          aria-label="Conversation title"
          value={title}
          ref={(el) => el && el.focus()}
          onInput={(e) => setTitle(e.currentTarget.value)}
          onKeyDown={(e) => {
            if (e.key === 'Enter') finish(true);
            else if (e.key === 'Escape') finish(false);
          }}
          onBlur={() => finish(true)}
        />
      </li>
    );
  }
  return (
    <li class={`conv${active ? ' active' : ''}`}>
      <button type="button" class="conv-title" title={conv.title} aria-current={active ? 'true' : undefined} onClick={() => onSelect(conv.id)}>
        {conv.title}
      </button>
      <button
        type="button"
        class="icon"
        aria-label={`Rename ${conv.title}`}
        title="Rename"
        onClick={() => {
          setTitle(conv.title);
          setRenaming(true);
        }}
      >
        ✎
      </button>
      <button type="button" class="icon" aria-label={`Delete ${conv.title}`} title="Delete" onClick={() => onDelete(conv.id)}>
        ×
      </button>
    </li>
  );
}

export function Sidebar({ convs, currentId, open, onSelect, onNew, onRename, onDelete, onExport, onImport, onClose }) {
  const fileRef = useRef(null);
  return (
    <>
      <div class={`scrim${open ? ' open' : ''}`} onClick={onClose} />
      <nav class={`sidebar${open ? ' open' : ''}`} aria-label="Conversations">
        <button type="button" class="primary new-chat" onClick={onNew}>
          + New chat
        </button>
        <ul class="convs">
          {convs.map((c) => (
            <Item key={c.id} conv={c} active={c.id === currentId} onSelect={onSelect} onRename={onRename} onDelete={onDelete} />
          ))}
          {convs.length === 0 ? <li class="empty">No conversations yet</li> : null}
        </ul>
        <div class="sidebar-foot">
          <button type="button" onClick={onExport} disabled={!convs.length}>
            Export
          </button>
          <button type="button" onClick={() => fileRef.current && fileRef.current.click()}>
            Import
          </button>
          <input
            ref={fileRef}
            type="file"
            accept="application/json,.json"
            class="hidden"
            aria-label="Import conversations"
            onChange={(e) => {
              const file = e.currentTarget.files && e.currentTarget.files[0];
              e.currentTarget.value = '';
              if (file) onImport(file);
            }}
          />
        </div>
      </nav>
    </>
  );
}
