"""llamaserve: llama.cpp's llama-server rebuilt in Python over libllama."""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("llamaserve")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0+unknown"
