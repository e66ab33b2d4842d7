"""Channel adapters: each translates one platform to `Event`/`Reply` and back."""
