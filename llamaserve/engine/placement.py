"""Where the model's layers and weights went, read from what libllama logs while it loads.

libllama has no call that tells which device holds a layer; it logs it (at debug level) as it
assigns them, with each device's weight buffer size and the offloaded layer count. These lines are
the only account of the split over --rpc servers and GPUs, so /props and the start-up log show them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_LAYER = re.compile(r"load_tensors: layer\s+(\d+) assigned to device (\S+?),")
_OFFLOADED = re.compile(r"load_tensors: offloaded (\d+)/(\d+) layers")
_BUFFER = re.compile(r"load_tensors:\s+(\S+) model buffer size =\s+([\d.]+) MiB")


def wanted(text: str) -> bool:
    """Whether a libllama log line is one of those read here (kept while a model loads)."""
    return text.startswith("load_tensors:") and ("assigned to device" in text or "offloaded" in text or "buffer size" in text)


@dataclass
class Placement:
    layers: dict[str, int] = field(default_factory=dict)  # device name -> layers assigned to it, in order seen
    buffers_mib: dict[str, float] = field(default_factory=dict)  # buffer name ("RPC0[host:port]", "CPU_Mapped") -> MiB
    offloaded: tuple[int, int] = (0, 0)  # layers offloaded, layers that could be

    def to_json(self, descriptions: dict[str, str]) -> dict:
        return {
            "layers": [{"device": name, "description": descriptions.get(name, ""), "n_layers": n} for name, n in self.layers.items()],
            "buffers_mib": {name: round(mib, 2) for name, mib in self.buffers_mib.items()},
            "n_layers_offloaded": self.offloaded[0],
            "n_layers_offloadable": self.offloaded[1],
        }

    def summary(self, descriptions: dict[str, str]) -> str:
        def name(dev: str) -> str:
            return f"{dev} ({descriptions[dev]})" if descriptions.get(dev) and descriptions[dev] != dev else dev

        split = ", ".join(f"{name(dev)} {n}" for dev, n in self.layers.items())
        return f"layers by device: {split}; offloaded {self.offloaded[0]}/{self.offloaded[1]}"


def parse(lines: list[str]) -> Placement:
    out = Placement()
    for line in lines:
        if m := _LAYER.search(line):
            out.layers[m.group(2)] = out.layers.get(m.group(2), 0) + 1
        elif m := _OFFLOADED.search(line):
            out.offloaded = (int(m.group(1)), int(m.group(2)))
        elif m := _BUFFER.search(line):
            out.buffers_mib[m.group(1)] = out.buffers_mib.get(m.group(1), 0.0) + float(m.group(2))
    return out
