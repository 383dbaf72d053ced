"""A small MCP server for the tests, on the official SDK (MCPServer, once FastMCP), over stdio.

Its tools: echo, add, slow (sleeps), crash (the process exits without answering), and whoami (which copy
of the server answered: the tests see a respawn in it). `--name NAME` prefixes what echo answers;
`--no-tools` offers none."""

import argparse
import os
import time

from mcp.server.mcpserver import MCPServer

parser = argparse.ArgumentParser()
parser.add_argument("--name", default="test")
parser.add_argument("--no-tools", action="store_true")
args = parser.parse_args()

server = MCPServer(args.name)

if not args.no_tools:
    @server.tool()
    def echo(message: str) -> str:
        """Say the message back."""
        return f"{args.name}: {message}"

    @server.tool()
    def add(a: int, b: int) -> str:
        """Add two integers."""
        return str(a + b)

    @server.tool()
    def slow(seconds: float) -> str:
        """Wait, then answer."""
        time.sleep(seconds)
        return "done"

    @server.tool()
    def crash() -> str:
        """End the server's process before answering."""
        os._exit(3)

    @server.tool()
    def whoami() -> str:
        """The process id of the server that answers."""
        return str(os.getpid())

server.run("stdio")
