"""llamaserve: llama.cpp's llama-server rebuilt in Python over libllama."""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("llamaserve")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0+unknown"


def build_info() -> str:
    """/props build_info in llama-server's "b<build>-<commit>" shape, which clients check starts with "b":
    here the llama-cpp-python release that supplies libllama, then llamaserve's own version."""
    try:
        engine = _version("llama-cpp-python")
    except PackageNotFoundError:
        engine = "0"
    return f"b{engine}-llamaserve-{__version__}"
