"""Views of the `account` toolset."""

from __future__ import annotations

from pydantic import Field

from onepin_mcp.api.models import Balance, Whoami
from onepin_mcp.views import View


class AccountView(View):
    """Who the key belongs to, what it may do, and the spendable balance."""

    user_id: str
    workspace_id: str | None = Field(description="the workspace every call acts on")
    scopes: list[str] = Field(description="what the key may do, e.g. workflows:run")
    credit_balance: int | None = Field(description="spendable credits; None if unreadable")
    plan_tier: str | None = None

    @classmethod
    def of(cls, whoami: Whoami, balance: Balance | None) -> AccountView:
        return cls(
            user_id=whoami.user_id,
            workspace_id=whoami.workspace_id,
            scopes=list(whoami.scopes),
            credit_balance=balance.balance if balance else None,
            plan_tier=balance.plan_tier if balance else None,
        )
