"""The email channel adapter (IMAP in, SMTP out); see docs/adapters/email.md.

A package named `email` inside `adapters` does not shadow the standard library: modules here use
absolute imports, so `email.message` is always the stdlib's.
"""

from adapters.email.adapter import EmailAdapter, create

__all__ = ["EmailAdapter", "create"]
