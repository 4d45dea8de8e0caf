"""Writes in organisations; each records its audit event in the same transaction.

One module per thing written: `organizations`, `memberships`, `invitations` and
`users`. Callers import from here (`from orgs.services import membership_add`).
"""

from orgs.selectors import RESERVED_SLUGS, free_slug, invitation_find  # reads, for callers
from orgs.services.invitations import invitation_accept, invitation_create, invitation_revoke
from orgs.services.memberships import membership_add, membership_remove, membership_role_change
from orgs.services.organizations import (
    organization_create,
    organization_lock,
    organization_update,
)
from orgs.services.users import (
    clean_email,
    user_create,
    user_deactivate,
    user_email_verify,
    user_password_reset_complete,
    user_signup,
)

__all__ = [
    "RESERVED_SLUGS",
    "clean_email",
    "free_slug",
    "invitation_accept",
    "invitation_create",
    "invitation_find",
    "invitation_revoke",
    "membership_add",
    "membership_remove",
    "membership_role_change",
    "organization_create",
    "organization_lock",
    "organization_update",
    "user_create",
    "user_deactivate",
    "user_email_verify",
    "user_password_reset_complete",
    "user_signup",
]
