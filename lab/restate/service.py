"""The lab's Restate service (restate-sdk), run by the lab's own venv, never by clocksync's.

``Hop/call`` (a stateless service) calls the virtual object ``Counter/add`` on the key it is
given; keys spread over the partitions, so the callee's partition leader is often another
node than the caller's: the hop ``invocation-attempt -> invocation-start`` crosses nodes, as
does ``ingress -> invocation-start`` when the ingress node is not the leader.

Run: ``python -m lab.restate.service --port 9080`` (hypercorn on 127.0.0.1, HTTP/2 cleartext
as the Restate server speaks it to deployments).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import restate
from hypercorn.asyncio import serve
from hypercorn.config import Config

counter = restate.VirtualObject("Counter")


@counter.handler()
async def add(ctx: restate.ObjectContext, amount: int) -> int:
    value: int = (await ctx.get("value", type_hint=int)) or 0
    value += amount
    ctx.set("value", value)
    return value


hop = restate.Service("Hop")


@hop.handler()
async def call(ctx: restate.Context, req: dict[str, Any]) -> int:
    result: int = await ctx.object_call(add, key=str(req["key"]), arg=int(req.get("amount", 1)))
    return result


app = restate.app(services=[hop, counter])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=9080)
    args = parser.parse_args()
    config = Config()
    config.bind = [f"127.0.0.1:{args.port}"]
    config.h2_max_concurrent_streams = 1000
    asyncio.run(serve(app, config))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
