"""Local fakes of the platforms we talk to, reached through each SDK's configurable base URL."""
