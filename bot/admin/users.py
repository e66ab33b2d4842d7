"""`/sb users`: people, their roles and identities; setting roles and blocking, with the rules on who may."""

from __future__ import annotations

from bot.admin.context import prefix_of, services_of
from bot.admin.directory import Directory, PersonInfo
from bot.commands import CommandContext, command, role_allows
from bot.store.people import Role


def _person_line(info: PersonInfo) -> str:
    ids = ", ".join(info.identities) or "no identities"
    return f"#{info.id} {info.name} — {info.role} ({ids})"


@command("users", summary="List people; show one; set a role; block or unblock",
         usage="users [show <who>|role <who> <owner|admin|member>|block <who>|unblock <who>]", min_role=Role.ADMIN)
async def users_command(ctx: CommandContext) -> str:
    services = services_of(ctx)
    directory = Directory(services.store.pool)
    args = ctx.args
    action = args[0].lower() if args else "list"
    who_help = "(who: a number like 12, or a channel identity like slack:U123)"
    if action == "list":
        people = await directory.recent(20)
        return "People (newest first):\n" + "\n".join(f"• {_person_line(p)}" for p in people)
    wanted = {"show": 2, "block": 2, "unblock": 2, "role": 3}
    if action not in wanted:
        return f"Unknown action {action!r}. Usage: `{prefix_of(ctx)} users [show|role|block|unblock] <who>` {who_help}"
    if len(args) != wanted[action]:
        usage = f"users role <who> <{'|'.join(r for r in Role if r is not Role.BLOCKED)}>" if action == "role" \
            else f"users {action} <who>"
        return f"Usage: `{prefix_of(ctx)} {usage}` {who_help}"
    target = await directory.find(args[1])
    if target is None:
        return f"I know nobody as {args[1]!r} {who_help}."
    if action == "show":
        return _person_line(target)
    new_role = {"block": Role.BLOCKED, "unblock": Role.MEMBER}.get(action)
    if new_role is None:
        try:
            new_role = Role(args[2].lower())
        except ValueError:
            return f"{args[2]!r} is not a role; roles are owner, admin, member and blocked."
    if action == "unblock" and target.role is not Role.BLOCKED:
        return f"#{target.id} {target.name} is not blocked."
    refusal = _may_set_role(ctx, target, new_role)
    if refusal:
        return refusal
    await services.store.people.set_role(target.id, new_role)
    note = ""
    owners = set(services.config.bot.owners)
    if owners & set(target.identities) and new_role is not Role.OWNER:
        note = " Note: they are named in bot.owners, so they become owner again when they next write; edit the config."
    return f"#{target.id} {target.name} is now {new_role} (was {target.role}).{note}"


def _may_set_role(ctx: CommandContext, target: PersonInfo, role: Role) -> str | None:
    """Admins manage members and blocked people; only owners grant or take admin and owner."""
    if target.id == ctx.person.id:
        return "You cannot change your own role; ask another owner."
    if role_allows(ctx.person.role, Role.OWNER):
        return None
    if role in (Role.ADMIN, Role.OWNER) or target.role in (Role.ADMIN, Role.OWNER):
        return f"Only an owner can make someone {role} or change an {target.role}'s role."
    return None
