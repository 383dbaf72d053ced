"""Whether to let ggml use its extra CPU buffer types (weight repacking, AMX).

A native ggml build runs AMX kernels whenever the CPU advertises AMX. On some
virtual machines (this project's CI among them) that advertise AMX and grant
the arch_prctl permission, the AMX matmul still dies with SIGILL on the first
decode. So by default extra buffer types are off on CPUs that advertise AMX;
`--repack` turns them on, `--no-repack` turns them off everywhere.
"""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def use_extra_buffer_types(repack: bool | None) -> bool:
    if repack is not None:
        return repack
    return "amx_tile" not in cpu_flags()
