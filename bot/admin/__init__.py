"""Running the bot from chat: admin commands, the audit log, rate limits and broadcasts."""
