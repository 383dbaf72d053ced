// Models from /v1/models. In router mode each entry has a status, and picking one asks the router to load it.
import { modelStatus } from '../chat.js';

export function ModelPicker({ models, selected, busy, onSelect }) {
  if (!models.length) return null;
  const routed = models.some((m) => modelStatus(m));
  if (!routed && models.length === 1) {
    return (
      <span class="model-name" title={models[0].id}>
        {models[0].id}
      </span>
    );
  }
  return (
    <select class="model-picker" aria-label="Model" value={selected} disabled={busy} onChange={(e) => onSelect(e.currentTarget.value)}>
      {models.map((m) => {
        const status = modelStatus(m);
        return (
          <option key={m.id} value={m.id}>
            {status ? `${m.id} (${status})` : m.id}
          </option>
        );
      })}
    </select>
  );
}
