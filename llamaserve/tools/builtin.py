"""The built-in tools: name, what /tools says about each, and the function that runs it. The parameter
names are llama-server's, so the web UI and agents written for it call them unchanged."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from llamaserve.tools import files, search, shell


@dataclass(frozen=True)
class BuiltinTool:
    name: str
    display_name: str
    description: str
    properties: dict
    required: tuple[str, ...]
    run: Callable
    write: bool = False  # changes files or runs commands: the web UI asks before each call
    streams: bool = False  # may answer a call with "stream": true

    @property
    def definition(self) -> dict:
        parameters: dict = {"type": "object", "properties": self.properties}
        if self.required:
            parameters["required"] = list(self.required)
        return {"type": "function", "function": {"name": self.name, "description": self.description, "parameters": parameters}}

    def to_json(self) -> dict:
        return {"display_name": self.display_name, "tool": self.name, "type": "server",
                "permissions": {"write": self.write}, "uses_cwd": True, "definition": self.definition}


def _p(kind: str, description: str) -> dict:
    return {"type": kind, "description": description}


_GLOB_RULE = ("A pattern without '/' (such as \"*.py\") is matched against file names at any depth; a pattern "
              "with '/' against the path relative to the directory, with \"**/\" put in front unless it starts with "
              "\"**\" or '/'. ")
_SKIPS = ("Files that .gitignore excludes (inside a git repository) and the contents of directories such as .git, "
          "node_modules, build and dist are skipped. ")

BUILTIN_TOOLS: tuple[BuiltinTool, ...] = (
    BuiltinTool(
        "read_file", "Read file",
        "Return a text file's contents, optionally only the lines from start_line to end_line (1-based, inclusive). "
        "With append_loc each line starts with its number and an arrow (\"7\u2192...\").",
        {"path": _p("string", "File to read"),
         "start_line": _p("integer", "First line to return, 1-based (default 1)"),
         "end_line": _p("integer", "Last line to return, inclusive (default: the last line)"),
         "append_loc": _p("boolean", "Start each line with its line number")},
        ("path",), files.read_file),
    BuiltinTool(
        "file_glob_search", "File search",
        "List the files under a directory whose paths match a glob pattern. " + _GLOB_RULE + _SKIPS
        + "type \"dir\" or \"all\" lists directories too (written with a trailing '/'; .gitignore is not applied then).",
        {"path": _p("string", "Directory to search"),
         "include": _p("string", "Glob of the entries to list, e.g. \"*.py\" or \"src/**/*.c\" (default **)"),
         "exclude": _p("string", "Glob of the entries to leave out"),
         "type": _p("string", "What to list: \"file\" (default), \"dir\" or \"all\""),
         "max_depth": _p("integer", "How deep to look: 0 = no limit (default), 1 = only the directory's own entries"),
         "limit": _p("integer", f"Most entries to return, at most {search.GLOB_MAX_RESULTS} (the default)")},
        ("path",), search.file_glob_search),
    BuiltinTool(
        "grep_search", "Grep search",
        "Find the lines that match a regular expression in a file, or in the files under a directory (shown with "
        "their paths relative to it). " + _SKIPS + "include and exclude are globs: " + _GLOB_RULE,
        {"path": _p("string", "File or directory to search"),
         "pattern": _p("string", "Regular expression to look for (a plain string with literal)"),
         "include": _p("string", "Glob of the files to search (default **)"),
         "exclude": _p("string", "Glob of the files to skip"),
         "return_line_numbers": _p("boolean", "Show the line number of each match"),
         "literal": _p("boolean", "Match the pattern as plain text (default false)"),
         "ignore_case": _p("boolean", "Ignore letter case (default false)"),
         "context_lines": _p("integer", "Lines to show before and after each match (default 0)")},
        ("path", "pattern"), search.grep_search),
    BuiltinTool(
        "exec_shell_command", "Execute shell command",
        "Run a command with sh -c and return what it writes (stdout and stderr together) and its exit code.",
        {"command": _p("string", "The shell command"),
         "timeout": _p("integer", f"Seconds before it is stopped (default {shell.SHELL_DEFAULT_TIMEOUT}, at most {shell.SHELL_MAX_TIMEOUT})"),
         "max_output_size": _p("integer", f"Most bytes of output to return (default and most {shell.SHELL_MAX_OUTPUT})")},
        ("command",), shell.exec_shell_command, write=True, streams=True),
    BuiltinTool(
        "write_file", "Write file",
        "Create or replace a file with the given text; missing parent directories are created. For changes to part "
        "of a file, edit_file is better.",
        {"path": _p("string", "File to write"), "content": _p("string", "The file's new contents")},
        ("path", "content"), files.write_file, write=True),
    BuiltinTool(
        "edit_file", "Edit file",
        "Change a file by replacing exact pieces of text. Every old_text must occur exactly once in the file as it "
        "is now (edits do not see each other's results) and no two may overlap: join neighbouring changes into one "
        "edit. To replace the whole file use write_file.",
        {"path": _p("string", "File to change"),
         "edits": {"type": "array", "description": "The replacements, one or more",
                   "items": {"type": "object",
                             "properties": {"old_text": _p("string", "Text to replace: exactly as in the file, once, not overlapping another edit"),
                                            "new_text": _p("string", "Text to put in its place")},
                             "required": ["old_text", "new_text"]}}},
        ("path", "edits"), files.edit_file, write=True),
    BuiltinTool(
        "get_info", "Get Runtime Info",
        "Return the operating system (name and version) and the working directory the tools run in.",
        {}, (), shell.get_info),
)
BUILTIN_NAMES = tuple(t.name for t in BUILTIN_TOOLS)


def enabled_builtins(names: list[str]) -> list[BuiltinTool]:
    """The tools --tools names, in the catalogue's order ("all" = every one). ValueError for an unknown name."""
    for name in names:
        if name != "all" and name not in BUILTIN_NAMES:
            raise ValueError(f"unknown tool \"{name}\". available tools: {', '.join(BUILTIN_NAMES)}")
    return [t for t in BUILTIN_TOOLS if "all" in names or t.name in names]
