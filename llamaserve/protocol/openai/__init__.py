"""OpenAI's chat completions and completions formats: `plan` (request JSON → Plan and Tasks) and `render`
(Results → response JSON and stream chunks). Both halves' names are importable from here."""

from llamaserve.protocol.openai.plan import (
    MAX_COMPLETION_LOGPROBS, MAX_TOP_LOGPROBS, ChatCompletionRequest, ChatServer, ChatSetup, CompletionsRequest, Plan,
    ReasoningBudgetText, Render, StreamOptions, build_tasks, chat_tasks, completions_tasks, normalize_messages,
    plan_chat, plan_completions, prefill_text, render_prompt, server_template_kwargs, validate_model,
)
from llamaserve.protocol.openai.render import (
    ChatChunks, CompletionChunks, Envelope, ParsedOutput, PlainOutput, chat_logprobs, chat_response,
    completion_logprobs, completions_response, finish_reason, new_id, parse_message, usage_json, verbose_json,
)

__all__ = [
    "MAX_COMPLETION_LOGPROBS", "MAX_TOP_LOGPROBS", "ChatCompletionRequest", "ChatServer", "ChatSetup",
    "CompletionsRequest", "Plan", "ReasoningBudgetText", "Render", "StreamOptions", "build_tasks", "chat_tasks",
    "completions_tasks",
    "normalize_messages", "plan_chat", "plan_completions", "prefill_text", "render_prompt", "server_template_kwargs",
    "validate_model", "ChatChunks", "CompletionChunks", "Envelope", "ParsedOutput", "PlainOutput", "chat_logprobs",
    "chat_response", "completion_logprobs", "completions_response", "finish_reason", "new_id", "parse_message",
    "usage_json", "verbose_json",
]
