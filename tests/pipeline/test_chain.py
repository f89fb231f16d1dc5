"""The stage chain runs stages outermost-first and lets each one see the response."""

from __future__ import annotations

from tokenomy.pipeline.chain import Handler, build_chain
from tokenomy.pipeline.context import CallContext, Completion, Endpoint, Response


class Tag:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    async def __call__(self, ctx: CallContext, call_next: Handler) -> Response:
        self.log.append(f"in:{self.name}")
        ctx.decisions[self.name] = True
        response = await call_next(ctx)
        self.log.append(f"out:{self.name}")
        return response


async def test_stages_run_in_order_around_the_terminal() -> None:
    log: list[str] = []

    async def terminal(ctx: CallContext) -> Response:
        log.append("terminal")
        return Completion({"seen": sorted(ctx.decisions)})

    chain = build_chain([Tag("a", log), Tag("b", log)], terminal)
    ctx = CallContext(request_id="r", endpoint=Endpoint.CHAT, body={}, model="m")
    response = await chain(ctx)
    assert log == ["in:a", "in:b", "terminal", "out:b", "out:a"]
    assert isinstance(response, Completion) and response.body == {"seen": ["a", "b"]}
