"""Switchboard's runtime core: events, bus, store, LLM, commands, server, CLI and the app."""
