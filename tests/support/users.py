"""The person behind an MCP client, for tests of confirmation questions: answers every
question (elicitation) the same way, and remembers each one."""

from __future__ import annotations

from mcp.client.session import ClientRequestContext
from mcp.types import ElicitRequestParams, ElicitResult, ErrorData


class User:
    """Answers every question with `action` ("accept" ticks the box as `confirm` says;
    "decline" or "cancel" answer without a form), and keeps the questions asked."""

    def __init__(self, action: str = "accept", confirm: bool = True) -> None:
        self.action = action
        self.confirm = confirm
        self.questions: list[str] = []

    async def __call__(
        self, context: ClientRequestContext, params: ElicitRequestParams
    ) -> ElicitResult | ErrorData:
        self.questions.append(params.message)
        if self.action == "accept":
            return ElicitResult(action="accept", content={"confirm": self.confirm})
        return ElicitResult(action=self.action)  # type: ignore[arg-type]
