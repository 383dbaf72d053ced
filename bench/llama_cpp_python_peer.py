"""Run llama-cpp-python's own server with ggml's extra buffer types off.

Its command line cannot turn them off, and on CPUs that advertise AMX inside some
VMs the AMX kernels die with SIGILL on the first decode (see llamaserve's AMX note).
Same effect as --no-repack on the two llama.cpp servers in the comparison.
"""

import runpy
import sys

import llama_cpp.llama_cpp as ll

_default_params = ll.llama_model_default_params


def _no_extra_buffers():
    params = _default_params()
    params.use_extra_bufts = False
    return params


ll.llama_model_default_params = _no_extra_buffers
sys.argv[0] = "llama_cpp.server"
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
