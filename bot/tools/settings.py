"""The `tools:` section of switchboard.yaml, validated.

    tools:
      builtins: [current_time, calculator, knowledge_search, remember, recall]   # default: the safe set
      modules: [acme_bot.tools]          # Python modules whose @tool functions load
      entry_points: true                 # also load the `switchboard.tools` entry point group
      timeout: 30                        # seconds per call unless a tool or node says otherwise
      http_request: {allow_hosts: [api.example.com], timeout: 10, max_bytes: 200000}
      approvals: {approvers: requester, timeout: 3600}
      mcp:
        files: {command: npx, args: [-y, "@modelcontextprotocol/server-filesystem", /srv]}
        tickets: {url: "http://127.0.0.1:9000/mcp", headers: {Authorization: "Bearer ${TICKETS_TOKEN}"}}
      composite: [config/tools/*.yaml]   # composite tools (files), or inline definitions
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bot.store.people import Role

SAFE_BUILTINS = ("current_time", "calculator", "knowledge_search", "remember", "recall")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Approvers(StrEnum):
    REQUESTER = "requester"  # the person who started the run presses Approve / Deny
    ADMINS = "admins"  # posted to `admin_rooms`; an admin answers with `/sb approve <id>`


class RoomRef(_Strict):
    channel: str
    room: str
    space: str = ""
    thread: str = ""


class ApprovalSettings(_Strict):
    approvers: Approvers = Approvers.REQUESTER
    timeout: float = Field(3600.0, gt=0)  # seconds before an unanswered approval counts as "timed out"
    admin_rooms: list[RoomRef] = Field(default_factory=list)
    sweep_interval: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _admins_need_a_room(self) -> ApprovalSettings:
        if self.approvers is Approvers.ADMINS and not self.admin_rooms:
            raise ValueError("approvals.approvers: admins needs approvals.admin_rooms (where to post the requests)")
        return self


class HttpToolSettings(_Strict):
    allow_hosts: list[str] = Field(default_factory=list)  # exact hosts or `*.example.com`; empty: none
    timeout: float = Field(10.0, gt=0)
    max_bytes: int = Field(200_000, ge=1)


class MCPServerSettings(_Strict):
    command: str | None = None  # stdio: the program to start
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None  # streamable HTTP endpoint
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: float = Field(30.0, gt=0)
    include: list[str] | None = None  # only these tools of the server
    approval: bool = False  # every tool of this server needs approval
    role: Role = Role.MEMBER

    @model_validator(mode="after")
    def _one_transport(self) -> MCPServerSettings:
        if (self.command is None) == (self.url is None):
            raise ValueError("an MCP server needs exactly one of `command` (stdio) or `url` (streamable HTTP)")
        return self


class ToolsSettings(_Strict):
    builtins: list[str] = Field(default_factory=lambda: list(SAFE_BUILTINS))
    modules: list[str] = Field(default_factory=list)
    entry_points: bool = True
    timeout: float = Field(30.0, gt=0)
    max_result_chars: int = Field(16_000, ge=100)
    http_request: HttpToolSettings = Field(default_factory=HttpToolSettings)
    approvals: ApprovalSettings = Field(default_factory=ApprovalSettings)
    mcp: dict[str, MCPServerSettings] = Field(default_factory=dict)
    composite: list[str | dict[str, Any]] = Field(default_factory=list)
