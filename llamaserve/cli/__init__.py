"""llama-server's command line (every flag, short form and LLAMA_ARG_* variable) → Config."""

from llamaserve.cli.children import read_models_preset
from llamaserve.cli.flags import FLAGS, Flag
from llamaserve.cli.parse import parse_args

__all__ = ["FLAGS", "Flag", "main", "parse_args", "read_models_preset"]


def main(argv=None) -> None:
    import sys

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["rpc-server"]:
        from llamaserve.cli.rpc_server import main as rpc_server

        sys.exit(rpc_server(argv[1:]))
    config = parse_args(argv)
    from llamaserve.server import run

    sys.exit(run(config))
