"""llama-server's command line (every flag, short form and LLAMA_ARG_* variable) → Config."""

from llamaserve.cli.children import read_models_preset
from llamaserve.cli.flags import FLAGS, Flag
from llamaserve.cli.parse import parse_args

__all__ = ["FLAGS", "Flag", "main", "parse_args", "read_models_preset"]


def main(argv=None) -> None:
    import sys

    config = parse_args(argv)
    from llamaserve.server import run

    sys.exit(run(config))
