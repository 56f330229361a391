"""A client's `message_handler` for tests over real transports: hands each
`resources/updated` URI to the test through a stream, so the test awaits it (bounded) instead
of polling a list."""

from __future__ import annotations

import anyio
from mcp.client.session import IncomingMessage
from mcp.types import ResourceUpdatedNotification


class Updates:
    """A `message_handler` that hands each `resources/updated` URI to the test."""

    def __init__(self) -> None:
        self._send, self.received = anyio.create_memory_object_stream[str](100)

    async def __call__(self, message: IncomingMessage) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            await self._send.send(message.params.uri)

    def close(self) -> None:
        self._send.close()
        self.received.close()
