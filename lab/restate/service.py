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
import signal
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
    asyncio.run(_serve(config))


async def _serve(config: Config) -> None:
    """hypercorn until SIGTERM. The SDK takes SIGTERM over on its first request (to tell its
    invocations, never to exit): the stop is one more hook of the SDK's signal dispatcher, so
    the process ends at once instead of waiting for the lab's SIGKILL."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        from restate.server import install_shutdown_hook
    except ImportError:  # an SDK without the dispatcher
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    else:
        install_shutdown_hook(loop, stop.set, signal.SIGTERM)
    await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
