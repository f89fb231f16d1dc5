"""Conversation state the gateway keeps for clients (Responses API ``store``)."""
