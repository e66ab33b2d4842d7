"""The admin feature's `/sb` commands, collected for the composition root (`bot/app.py` reads COMMANDS).

Each handler gets the runtime and the services through its `CommandContext`; the runtime has
already checked the caller's role when a handler runs, and writes the audit row after it.
"""

from __future__ import annotations

from bot.admin.audit import audit_command
from bot.admin.broadcast import broadcast_command, optin_command
from bot.admin.flow_control import flows_command
from bot.admin.runs import runs_command
from bot.admin.status import status_command
from bot.admin.users import users_command

COMMANDS = [status_command, flows_command, runs_command, users_command, audit_command, broadcast_command,
            optin_command]
