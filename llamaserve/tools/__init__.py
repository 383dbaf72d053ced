"""Built-in tools for agents (files, search, shell) and the tools of MCP servers, as llama-server's /tools
serves them: pure tool logic here, the HTTP routes in api/tools.py."""
