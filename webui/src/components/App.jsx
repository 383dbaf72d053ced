// The chat page: server info, conversations, the generation loop and the layout.
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, getJSON, postJSON, setApiKey, streamChat } from '../api.js';
import { applyChunk, buildRequest, modelStatus, newId, serverDefaults, titleFrom } from '../chat.js';
import { DENIED_TEXT, MAX_TOOL_ROUNDS, parseArguments, resultText, settled, toolByName, toolDefinitions, toolRounds } from '../tools.js';
import { copyText } from '../clipboard.js';
import { acceptedTypes } from '../media.js';
import * as store from '../storage.js';
import { Composer } from './Composer.jsx';
import { KeyForm } from './KeyForm.jsx';
import { Message } from './Message.jsx';
import { ModelPicker } from './ModelPicker.jsx';
import { Settings } from './Settings.jsx';
import { Sidebar } from './Sidebar.jsx';

const USABLE = new Set(['loaded', 'sleeping']);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function initialKey() {
  const key = store.loadApiKey();
  setApiKey(key);
  return key;
}

export function App() {
  const [convs, setConvs] = useState(store.loadConversations);
  const [currentId, setCurrentId] = useState(() => {
    const id = store.loadCurrentId();
    return convs.some((c) => c.id === id) ? id : null;
  });
  const [settings, setSettings] = useState(store.loadSettings);
  const [apiKey, setKey] = useState(initialKey);
  const [props, setProps] = useState(null);
  const [models, setModels] = useState([]);
  const [model, setModel] = useState(store.loadModel);
  const [server, setServer] = useState({ state: 'connecting', message: '' });
  const [streamingId, setStreamingId] = useState(null);
  const [notice, setNotice] = useState(null);
  const [settingsOpen, setSettingsOpen] = useState(false);
  const [sidebarOpen, setSidebarOpen] = useState(false);
  const [tools, setTools] = useState([]); // GET /tools: what the server lets the model call
  const [toolsRunning, setToolsRunning] = useState(false);
  const controllerRef = useRef(null);
  const loadTokenRef = useRef(0);
  const listRef = useRef(null);
  const stickRef = useRef(true);
  const deletedRef = useRef(new Set()); // a stream still running must not bring these back

  const current = convs.find((c) => c.id === currentId) || null;
  const defaults = useMemo(() => serverDefaults(props), [props]);
  const busy = streamingId !== null || toolsRunning;
  const toolsOffered = settings.useTools !== false && tools.length > 0;
  // the agent loop runs across awaits: it reads the settings and tools of now, not of when it began
  const settingsRef = useRef(settings);
  settingsRef.current = settings;
  const toolsRef = useRef(tools);
  toolsRef.current = tools;

  // --- persistence ---

  const persist = useCallback((conv) => {
    try {
      store.saveConversation(conv);
    } catch (e) {
      setNotice({ kind: 'error', text: `Could not save the conversation in this browser: ${e.message}` });
    }
  }, []);

  const putConv = useCallback(
    (conv, save = true) => {
      if (deletedRef.current.has(conv.id)) return;
      setConvs((list) => store.sortConversations([conv, ...list.filter((c) => c.id !== conv.id)]));
      if (save) persist(conv);
    },
    [persist],
  );

  const openConv = (id) => {
    setCurrentId(id);
    store.saveCurrentId(id);
    setSidebarOpen(false);
    stickRef.current = true;
  };

  // --- server info ---

  const pickModel = (list, wanted) => {
    if (list.some((m) => m.id === wanted)) return wanted;
    const usable = list.find((m) => USABLE.has(modelStatus(m)));
    return (usable || list[0] || {}).id || '';
  };

  const loadServer = useCallback(async () => {
    try {
      const [p, m] = await Promise.all([getJSON('props'), getJSON('v1/models')]);
      const list = Array.isArray(m.data) ? m.data : [];
      setProps(p);
      setModels(list);
      setModel((old) => pickModel(list, old));
      setServer({ state: 'ready', message: '' });
      // 403 when the server runs without --tools or MCP servers: then there are none to offer
      getJSON('tools')
        .then((list) => setTools(Array.isArray(list) ? list : []))
        .catch(() => setTools([]));
    } catch (e) {
      if (e.status === 401) setServer({ state: 'auth', message: e.message });
      else if (e.status === 503) {
        setServer({ state: 'loading', message: e.message });
        setTimeout(loadServer, 2000);
      } else setServer({ state: 'error', message: e.message });
    }
  }, []);

  useEffect(() => {
    loadServer();
  }, [loadServer]);

  // Router mode: the defaults shown are those of the chosen model once it runs.
  useEffect(() => {
    const entry = models.find((m) => m.id === model);
    if (!entry || !USABLE.has(modelStatus(entry))) return;
    getJSON(`props?model=${encodeURIComponent(model)}`)
      .then(setProps)
      .catch(() => {});
  }, [model, models]);

  const selectModel = async (id) => {
    setModel(id);
    store.saveModel(id);
    const token = ++loadTokenRef.current;
    const entry = models.find((m) => m.id === id);
    const status = modelStatus(entry);
    if (!status || USABLE.has(status)) return;
    try {
      if (status !== 'loading') await postJSON('models/load', { model: id });
      // Poll until the router reports the model running (or failed); a newer pick ends this loop.
      for (let i = 0; i < 1200 && token === loadTokenRef.current; i++) {
        const list = (await getJSON('v1/models')).data || [];
        setModels(list);
        const found = list.find((m) => m.id === id);
        const now = modelStatus(found);
        if (USABLE.has(now)) return;
        if (now === 'failed' || !found) {
          setNotice({ kind: 'error', text: `Model ${id} failed to load` });
          return;
        }
        await sleep(1000);
      }
    } catch (e) {
      if (token === loadTokenRef.current) setNotice({ kind: 'error', text: `Could not load ${id}: ${e.message}` });
    }
  };

  // --- generation ---

  const generate = async (conv) => {
    const history = conv.messages;
    let assistant = { id: newId(), role: 'assistant', content: '', pending: true };
    let latest = { ...conv, updatedAt: Date.now(), messages: [...history, assistant] };
    putConv(latest);
    stickRef.current = true;

    let body;
    const offered = settingsRef.current.useTools !== false ? toolDefinitions(toolsRef.current) : [];
    try {
      body = buildRequest(settings, history, model, offered);
    } catch (e) {
      assistant = { ...assistant, pending: false, error: `bad settings: ${e.message}` };
      putConv({ ...latest, messages: [...history, assistant] });
      return;
    }

    const controller = new AbortController();
    controllerRef.current = controller;
    setStreamingId(conv.id);
    let frame = 0;
    let lastSave = Date.now();
    // Repaint at most once per frame however fast tokens arrive; save now and then.
    const flush = () => {
      frame = 0;
      latest = { ...latest, messages: [...history, assistant] };
      const save = Date.now() - lastSave > 1000;
      if (save) lastSave = Date.now();
      putConv(latest, save);
    };
    try {
      for await (const chunk of streamChat(body, controller.signal)) {
        assistant = applyChunk(assistant, chunk);
        if (!frame) frame = requestAnimationFrame(flush);
      }
    } catch (e) {
      if (controller.signal.aborted) assistant = { ...assistant, stopped: true };
      else {
        const status = e instanceof ApiError ? e.status : 0;
        assistant = { ...assistant, error: e.message || String(e), errorStatus: status };
        if (status === 401) setServer((s) => (s.state === 'ready' ? s : { state: 'auth', message: e.message }));
      }
    } finally {
      if (frame) cancelAnimationFrame(frame);
      const { pending, ...done } = assistant;
      latest = { ...latest, updatedAt: Date.now(), messages: [...history, done] };
      putConv(latest);
      controllerRef.current = null;
      setStreamingId(null);
    }
    const reply = latest.messages[latest.messages.length - 1];
    if (offered.length && !reply.error && !reply.stopped && reply.toolCalls && reply.toolCalls.length) runToolCalls(latest);
  };

  // --- server tools: the agent loop ---

  // A new conversation object with the last message's call `i` changed, saved.
  const patchCall = (conv, i, patch) => {
    const msgs = conv.messages;
    const last = msgs[msgs.length - 1];
    const calls = last.toolCalls.map((c, j) => (j === i ? { ...c, ...patch } : c));
    const next = { ...conv, updatedAt: Date.now(), messages: [...msgs.slice(0, -1), { ...last, toolCalls: calls }] };
    putConv(next);
    return next;
  };

  // Runs the last reply's tool calls in order (each waits for Allow unless auto-allow is on), then lets
  // the model go on with their results. Returns at a call that waits for the user; decide() resumes it.
  const runToolCalls = async (conv) => {
    let c = conv;
    const calls = () => c.messages[c.messages.length - 1].toolCalls || [];
    setToolsRunning(true);
    try {
      for (let i = 0; i < calls().length; i++) {
        const call = calls()[i];
        if (settled(call)) continue;
        if (!toolByName(toolsRef.current, call.name)) {
          c = patchCall(c, i, { status: 'error', result: `Error: the server has no tool named "${call.name}"` });
          continue;
        }
        if (call.status !== 'allowed' && !settingsRef.current.autoAllowTools) {
          if (call.status !== 'pending') c = patchCall(c, i, { status: 'pending' });
          return;
        }
        c = patchCall(c, i, { status: 'running' });
        let outcome;
        try {
          const result = await postJSON('tools', { tool: call.name, params: parseArguments(call.arguments) });
          outcome = { status: result && result.error ? 'error' : 'done', result: resultText(result) };
        } catch (e) {
          outcome = { status: 'error', result: `Error: ${e.message || e}` };
        }
        if (deletedRef.current.has(c.id)) return;
        c = patchCall(c, i, outcome);
      }
    } finally {
      setToolsRunning(false);
    }
    if (toolRounds(c.messages) >= MAX_TOOL_ROUNDS) {
      setNotice({ kind: 'info', text: `Stopped after ${MAX_TOOL_ROUNDS} rounds of tool calls: send a message to go on.` });
      return;
    }
    generate(c);
  };

  // The user's Allow or Deny on the call waiting for it.
  const decide = (msgId, i, allow) => {
    if (!current || busy) return;
    const last = current.messages[current.messages.length - 1];
    if (!last || last.id !== msgId || !last.toolCalls || !last.toolCalls[i] || last.toolCalls[i].status !== 'pending') return;
    const next = patchCall(current, i, allow ? { status: 'allowed' } : { status: 'denied', result: DENIED_TEXT });
    runToolCalls(next);
  };

  // Calls still waiting when the user writes instead are refused: the model then hears why.
  const closeWaitingCalls = (conv) => {
    const last = conv.messages[conv.messages.length - 1];
    if (!last || !last.toolCalls || last.toolCalls.every(settled)) return conv;
    const calls = last.toolCalls.map((c) => (settled(c) ? c : { ...c, status: 'denied', result: DENIED_TEXT }));
    return { ...conv, messages: [...conv.messages.slice(0, -1), { ...last, toolCalls: calls }] };
  };

  const send = (text, attachments = []) => {
    const now = Date.now();
    const title = titleFrom(text || attachments.map((a) => a.name).join(', '));
    const base = current ? closeWaitingCalls(current) : { id: newId(), title, createdAt: now, updatedAt: now, messages: [] };
    const user = { id: newId(), role: 'user', content: text };
    if (attachments.length) user.attachments = attachments; // kept with the conversation, sent as content parts
    const conv = { ...base, messages: [...base.messages, user] };
    openConv(conv.id);
    generate(conv);
  };

  const stop = () => controllerRef.current && controllerRef.current.abort();

  const regenerate = () => {
    if (!current || busy) return;
    const msgs = current.messages;
    let end = msgs.length;
    while (end > 0 && msgs[end - 1].role === 'assistant') end--;
    if (end === 0) return;
    generate({ ...current, messages: msgs.slice(0, end) });
  };

  const editSend = (id, text) => {
    if (!current || busy) return;
    const i = current.messages.findIndex((m) => m.id === id);
    if (i < 0) return;
    const edited = { ...current.messages[i], content: text };
    generate({ ...current, messages: [...current.messages.slice(0, i), edited] });
  };

  const saveKey = (key) => {
    setKey(key);
    setApiKey(key);
    try {
      store.saveApiKey(key);
    } catch {
      // kept for this page only
    }
    loadServer();
    // Retry the reply that failed for want of a key.
    const last = current && current.messages[current.messages.length - 1];
    if (last && last.errorStatus === 401 && !busy) regenerate();
  };

  // --- conversations ---

  const newChat = () => {
    setCurrentId(null);
    store.saveCurrentId(null);
    setSidebarOpen(false);
  };

  const rename = (id, title) => {
    const conv = convs.find((c) => c.id === id);
    if (conv) putConv({ ...conv, title });
  };

  const remove = (id) => {
    const conv = convs.find((c) => c.id === id);
    if (!conv || !window.confirm(`Delete "${conv.title}"?`)) return;
    deletedRef.current.add(id);
    if (id === streamingId) stop();
    store.deleteConversation(id);
    setConvs((list) => list.filter((c) => c.id !== id));
    if (id === currentId) newChat();
  };

  const exportAll = () => {
    const blob = new Blob([store.exportJSON(convs)], { type: 'application/json' });
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = `llamaserve-conversations-${new Date().toISOString().slice(0, 10)}.json`;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  };

  const importFile = async (file) => {
    try {
      const imported = store.parseImport(await file.text(), [...convs.map((c) => c.id), ...deletedRef.current]);
      imported.forEach((c) => persist(c));
      setConvs((list) => store.sortConversations([...imported, ...list]));
      setNotice({ kind: 'info', text: `Imported ${imported.length} conversation${imported.length === 1 ? '' : 's'}` });
    } catch (e) {
      setNotice({ kind: 'error', text: `Import failed: ${e.message}` });
    }
  };

  const saveSettings = (next, key) => {
    setSettings(next);
    try {
      store.saveSettings(next);
    } catch (e) {
      setNotice({ kind: 'error', text: `Could not save settings: ${e.message}` });
    }
    if (key !== apiKey) saveKey(key);
    setSettingsOpen(false);
  };

  // --- view ---

  // Follow the reply as it grows unless the reader scrolled up.
  useEffect(() => {
    const el = listRef.current;
    if (el && stickRef.current) el.scrollTop = el.scrollHeight;
  }, [current]);

  const onScroll = (e) => {
    const el = e.currentTarget;
    stickRef.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
  };

  // Copy buttons inside rendered markdown are plain HTML: one delegated handler serves them all.
  const onListClick = async (e) => {
    const button = e.target.closest && e.target.closest('button[data-copy]');
    if (!button) return;
    const code = button.closest('.code-block')?.querySelector('code');
    if (code && (await copyText(code.textContent))) {
      button.textContent = 'Copied';
      setTimeout(() => (button.textContent = 'Copy'), 1500);
    }
  };

  const title = current ? current.title : 'New chat';
  const modelLabel = model || (props && props.model_alias) || 'the model';
  const lastIndex = current ? current.messages.length - 1 : -1;

  return (
    <div class="layout">
      <Sidebar
        convs={convs}
        currentId={currentId}
        open={sidebarOpen}
        onSelect={openConv}
        onNew={newChat}
        onRename={rename}
        onDelete={remove}
        onExport={exportAll}
        onImport={importFile}
        onClose={() => setSidebarOpen(false)}
      />
      <main class="main">
        <header class="topbar">
          <button type="button" class="icon menu" aria-label="Conversations" onClick={() => setSidebarOpen(!sidebarOpen)}>
            ☰
          </button>
          <h1 class="title" title={title}>
            {title}
          </h1>
          <ModelPicker models={models} selected={model} busy={busy} onSelect={selectModel} />
          <button type="button" class="icon" aria-label="Settings" title="Settings" onClick={() => setSettingsOpen(true)}>
            ⚙
          </button>
        </header>

        {server.state === 'loading' ? <div class="banner info">The server is loading the model…</div> : null}
        {server.state === 'error' ? (
          <div class="banner error" role="alert">
            Cannot talk to the server: {server.message}{' '}
            <button type="button" onClick={loadServer}>
              Retry
            </button>
          </div>
        ) : null}
        {server.state === 'auth' ? (
          <div class="banner error" role="alert">
            The server needs an API key ({server.message}).
            <KeyForm onSave={saveKey} />
          </div>
        ) : null}
        {notice ? (
          <div class={`banner ${notice.kind}`} role={notice.kind === 'error' ? 'alert' : 'status'}>
            {notice.text}{' '}
            <button type="button" class="icon" aria-label="Dismiss" onClick={() => setNotice(null)}>
              ×
            </button>
          </div>
        ) : null}

        <div class="messages" ref={listRef} onScroll={onScroll} onClick={onListClick}>
          <div class="messages-inner">
            {current && current.messages.length ? (
              current.messages.map((m, i) => (
                <Message
                  key={m.id}
                  msg={m}
                  isLast={i === lastIndex}
                  busy={busy}
                  onRegenerate={regenerate}
                  onEditSend={editSend}
                  onSaveKey={saveKey}
                  onDecide={decide}
                />
              ))
            ) : (
              <div class="welcome">
                <h2>Chat with {modelLabel}</h2>
                <p>Everything stays on this server and in this browser.</p>
                {toolsOffered ? (
                  <p class="tools-note">
                    The model may use {tools.length} server tool{tools.length === 1 ? '' : 's'}
                    {settings.autoAllowTools ? ', run without asking (see Settings).' : '; each call waits for your Allow.'}
                  </p>
                ) : null}
              </div>
            )}
          </div>
        </div>

        <Composer
          busy={busy}
          disabled={false}
          onSend={send}
          onStop={stop}
          accept={acceptedTypes(props)}
          onError={(text) => setNotice({ kind: 'error', text })}
        />
      </main>
      {settingsOpen ? (
        <Settings
          settings={settings}
          defaults={defaults}
          apiKey={apiKey}
          toolCount={tools.length}
          onSave={saveSettings}
          onClose={() => setSettingsOpen(false)}
        />
      ) : null}
    </div>
  );
}
