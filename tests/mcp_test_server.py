"""A small MCP server for the tests, on the official SDK (MCPServer, once FastMCP), over stdio.

Its tools: echo, add, slow (sleeps), crash (the process exits without answering), and whoami (which copy
of the server answered: the tests see a respawn in it). `--name NAME` prefixes what echo answers;
`--no-tools` offers none; `--http PORT` serves streamable HTTP at http://127.0.0.1:PORT/mcp instead of
stdio, `--sse PORT` the older SSE transport at /sse."""

import argparse
import os
import time

from mcp.server.mcpserver import MCPServer

parser = argparse.ArgumentParser()
parser.add_argument("--name", default="test")
parser.add_argument("--no-tools", action="store_true")
parser.add_argument("--http", type=int, default=0)
parser.add_argument("--sse", type=int, default=0)
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

if args.http:
    server.run("streamable-http", host="127.0.0.1", port=args.http)
elif args.sse:
    server.run("sse", host="127.0.0.1", port=args.sse)
else:
    server.run("stdio")
