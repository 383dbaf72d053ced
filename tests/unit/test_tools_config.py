"""The tools' configuration, checked before anything starts: --tools names, runtime specs (llama-server's
checks against option injection), the mcpServers format."""

import pytest

from llamaserve.cli.parse import UsageError, build_config, finish
from llamaserve.tools.builtin import BUILTIN_NAMES, enabled_builtins
from llamaserve.tools.mcp_config import McpServerSpec, parse_mcp_servers
from llamaserve.tools.runtime import RuntimeRefused, RuntimeSpec, parse_runtime


def test_tool_names():
    assert [t.name for t in enabled_builtins(["all"])] == list(BUILTIN_NAMES)
    assert [t.name for t in enabled_builtins(["get_info", "read_file"])] == ["read_file", "get_info"]
    with pytest.raises(ValueError, match='unknown tool "nope". available tools: read_file'):
        enabled_builtins(["nope"])


@pytest.mark.parametrize("spec, for_call, expected", [
    ("docker-container:abc_1.2-x", True, RuntimeSpec("container", "docker", "abc_1.2-x")),
    ("podman-container:f00", True, RuntimeSpec("container", "podman", "f00")),
    ("ssh:user@host.example", True, RuntimeSpec("ssh", "", "user@host.example")),
    ("docker:busybox:1.36", False, RuntimeSpec("image", "docker", "busybox:1.36")),
])
def test_runtime_specs(spec, for_call, expected):
    assert parse_runtime(spec, for_call=for_call) == expected


@pytest.mark.parametrize("spec, for_call, message", [
    ("docker-container:--privileged", True, "invalid container id: --privileged"),
    ("docker-container:", True, "invalid container id"),
    ("podman-container:a b", True, "invalid container id"),
    ("ssh:-oProxyCommand=touch /tmp/x", True, "invalid ssh target"),
    ("ssh:host;rm -rf /", True, "invalid ssh target"),
    ("docker:busybox", True, "must name a running container"),
    ("docker:", False, "requires an image name"),
    ("fake:x", True, "unknown tool runtime: fake:x"),
    ("fake:x", False, "unknown --tools-runtime option: fake:x"),
])
def test_runtime_refusals(spec, for_call, message):
    with pytest.raises(RuntimeRefused, match=message.replace("?", r"\?")) as info:
        parse_runtime(spec, for_call=for_call)
    assert info.value.status == 500


def test_mcp_servers_format():
    servers, warnings = parse_mcp_servers(
        '{"mcpServers": {"a": {"command": "x", "args": ["-v"], "env": {"K": "V"}, "timeout_ms": 5},'
        ' "b": {"url": "http://h/mcp", "headers": {"Authorization": "t"}}, "c": {"url": "http://h/sse", "type": "sse"},'
        ' "d": {"args": []}}}', "cfg")
    assert servers == [
        McpServerSpec("a", command="x", args=("-v",), env={"K": "V"}, timeout_ms=5),
        McpServerSpec("b", url="http://h/mcp", headers={"Authorization": "t"}, transport="http"),
        McpServerSpec("c", url="http://h/sse", transport="sse"),
    ]
    assert warnings == ["cfg: MCP server 'd' has no command (nor url), skipped"]
    assert parse_mcp_servers("{}", "cfg") == ([], ["cfg: no mcpServers object, no MCP server configured"])


@pytest.mark.parametrize("text, message", [
    ("not json", "invalid JSON"),
    ('{"mcpServers": {"a": "x"}}', "mcpServers.a must be an object"),
    ('{"mcpServers": {"a": {"command": "x", "args": [1]}}}', "args must be an array of strings"),
    ('{"mcpServers": {"a": {"command": "x", "env": {"K": 1}}}}', "env must be an object of strings"),
    ('{"mcpServers": {"a": {"command": "x", "timeout_ms": true}}}', "timeout_ms must be a positive integer"),
    ('{"mcpServers": {"a": {"command": "x", "type": "sse"}}}', "does not fit"),
    ('{"mcpServers": {"a": {"url": "http://h", "type": "carrier-pigeon"}}}', "does not fit"),
])
def test_mcp_servers_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_mcp_servers(text, "cfg")


def config_of(*argv):
    config, _ = build_config(list(argv), {})
    finish(config)
    return config


def test_tools_default_cors_to_localhost_unless_given(tmp_path):
    assert config_of().cors_origins == "*"
    assert config_of("--tools", "read_file").cors_origins == "localhost"
    assert config_of("--mcp-servers-json", '{"mcpServers": {}}').cors_origins == "localhost"
    assert config_of("--tools", "all", "--cors-origins", "*").cors_origins == "*"


def test_mcp_sources_join_and_the_first_name_counts(tmp_path):
    path = tmp_path / "mcp.json"
    path.write_text('{"mcpServers": {"a": {"command": "from-file"}}}')
    config = config_of("--mcp-servers-config", str(path), "--mcp-servers-json",
                       '{"mcpServers": {"a": {"command": "inline"}, "b": {"command": "b"}}}')
    assert [(s.name, s.command) for s in config.mcp_servers] == [("a", "from-file"), ("b", "b")]
    assert any("'a' given twice" in n for n in config.notices)
    with pytest.raises(UsageError, match="failed to open MCP config file"):
        config_of("--mcp-servers-config", str(tmp_path / "missing.json"))
