"""Which model serves each conversation (X-Conversation-Id), so that the router sends GET/DELETE /v1/stream
straight to the child that holds its session.

Each registration gets a ticket; forgetting the conversation (a stop) or a newer request for it ends the
ticket, which is how a stop reaches a request still waiting for its model to load."""

from __future__ import annotations

import itertools
from collections import OrderedDict

# Our bound (llama-server keeps every entry until a stop): the oldest conversations are forgotten first.
MAX_CONVERSATIONS = 4096


class ConversationOwners:
    def __init__(self, limit: int = MAX_CONVERSATIONS):
        self.limit = limit
        self._owners: OrderedDict[str, tuple[str, int]] = OrderedDict()  # conv id -> (model, ticket)
        self._tickets = itertools.count(1)

    def remember(self, conversation_id: str, model: str) -> int:
        """Register the conversation's model; returns its ticket (0: nothing to register)."""
        if not conversation_id or not model:
            return 0
        ticket = next(self._tickets)
        self._owners.pop(conversation_id, None)
        self._owners[conversation_id] = (model, ticket)
        while len(self._owners) > self.limit:
            self._owners.popitem(last=False)
        return ticket

    def alive(self, conversation_id: str, ticket: int) -> bool:
        """False once a stop forgot the conversation or a newer request took it over."""
        owner = self._owners.get(conversation_id)
        return owner is not None and owner[1] == ticket

    def lookup(self, conversation_id: str) -> str | None:
        owner = self._owners.get(conversation_id)
        return owner[0] if owner is not None else None

    def forget(self, conversation_id: str) -> None:
        self._owners.pop(conversation_id, None)
