"""Request limits, enforced before a route reads anything: a body larger than
``FEEDLAB_MAX_BODY_BYTES`` is answered 413, a query string longer than
``FEEDLAB_MAX_QUERY_BYTES`` 422 (in the shape of FastAPI's validation errors)."""

import json

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class RequestLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_query_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_query_bytes = max_query_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"")
        if len(query) > self.max_query_bytes:
            await _send_json(send, 422, _query_too_long(len(query), self.max_query_bytes))
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            # Refused from the headers alone: the body is never read.
            await _send_json(send, 413, {"detail": self._too_large(declared)})
            return
        # A chunked body (no Content-Length) is read here, at most the limit, and handed on.
        # Raising from the app's receive would not do: FastAPI turns any error while
        # reading a body into a 400.
        messages: list[Message] = []
        received = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            received += len(message.get("body", b""))
            if received > self.max_body_bytes:
                await _send_json(send, 413, {"detail": self._too_large(f"over {received}")})
                return
            if not message.get("more_body", False):
                break
        buffered = iter(messages)

        async def replay() -> Message:
            return next(buffered, None) or await receive()

        await self.app(scope, replay, send)

    def _too_large(self, size: str) -> str:
        return (
            f"request body too large ({size} bytes); "
            f"at most {self.max_body_bytes} bytes (FEEDLAB_MAX_BODY_BYTES)"
        )


def _query_too_long(length: int, limit: int) -> dict[str, object]:
    return {
        "detail": [
            {
                "type": "string_too_long",
                "loc": ["query"],
                "msg": f"query string too long ({length} bytes); at most {limit} bytes",
                "input": None,
            }
        ]
    }


async def _send_json(send: Send, status: int, body: dict[str, object]) -> None:
    content = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(content)).encode()),
                # the rest of the body is not read: the connection cannot be reused
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": content})
