// Attachments: what the model takes (from /props modalities), files read as data: URLs, and the
// OpenAI content parts a user message with attachments becomes.

export const MAX_ATTACHMENT_BYTES = 16 * 1024 * 1024;

// The file input's accept list for the loaded model ('' when it takes no media).
export function acceptedTypes(props) {
  const m = (props && props.modalities) || {};
  return [m.vision ? 'image/*' : '', m.audio ? 'audio/*' : ''].filter(Boolean).join(',');
}

function kindOf(type) {
  if (type.startsWith('image/')) return 'image';
  if (type.startsWith('audio/')) return 'audio';
  return '';
}

export function readAttachment(file, accept) {
  const kind = kindOf(file.type || '');
  if (!kind || !accept.includes(`${kind}/*`)) {
    return Promise.reject(new Error(`${file.name}: this model does not take ${file.type || 'this kind of file'}`));
  }
  if (file.size > MAX_ATTACHMENT_BYTES) {
    return Promise.reject(new Error(`${file.name} is larger than ${MAX_ATTACHMENT_BYTES >> 20} MiB`));
  }
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve({ kind, name: file.name, type: file.type, url: reader.result });
    reader.onerror = () => reject(new Error(`${file.name}: ${reader.error}`));
    reader.readAsDataURL(file);
  });
}

const AUDIO_FORMATS = { 'audio/wav': 'wav', 'audio/x-wav': 'wav', 'audio/wave': 'wav', 'audio/mpeg': 'mp3', 'audio/mp3': 'mp3', 'audio/flac': 'flac' };

// A user message's content: its text alone, or with attachments the text and then each one as a part.
export function userContent(msg) {
  const list = msg.attachments || [];
  if (!list.length) return msg.content;
  const parts = msg.content ? [{ type: 'text', text: msg.content }] : [];
  for (const a of list) {
    if (a.kind === 'image') parts.push({ type: 'image_url', image_url: { url: a.url } });
    else parts.push({ type: 'input_audio', input_audio: { data: a.url.split(',', 2)[1] || '', format: AUDIO_FORMATS[a.type] || 'wav' } });
  }
  return parts;
}
