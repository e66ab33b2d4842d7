"""The flow engine: flows loaded from YAML, matched to events by triggers, run node by node with
every step persisted so a run survives a restart."""
