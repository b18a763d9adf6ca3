"""A small /ws client: subscribe to some endpoints, alarms and commands, and print what arrives.

    python examples/ws_client.py [--url ws://127.0.0.1:5007/ws] [--endpoints 10,12] [--token T]

It answers the server's heartbeat `ping` with `pong`, and reconnects with the seed's backoff
(3 s, 6 s, 12 s, then 30 s at most, with jitter) whenever the connection drops.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
from urllib.parse import quote

import websockets


async def watch(url: str, endpoint_ids: list[int] | None) -> None:
    async with websockets.connect(url) as ws:
        telemetry = {"type": "subscribe", "channel": "telemetry"}
        if endpoint_ids:
            telemetry["endpointIds"] = endpoint_ids
        for message in (telemetry, {"type": "subscribe", "channel": "alarms"},
                        {"type": "subscribe", "channel": "commands"}):
            await ws.send(json.dumps(message))
        async for text in ws:
            frame = json.loads(text)
            kind = frame["type"]
            if kind == "ping":
                await ws.send(json.dumps({"type": "pong"}))
            elif kind == "telemetry":
                print(f"{frame['timestamp']}  endpoint {frame['endpointId']:>3} = {frame['value']} "
                      f"{frame.get('unit', '')} [{frame.get('quality')}]")
            elif kind == "command_status":
                print(f"command {frame['commandId']}: {frame['status']} (actual {frame['actualValue']})")
            elif kind == "alarm":
                print(f"ALARM {frame['alarmId']} {frame['event']} [{frame['severity']}] {frame['message']}")
            else:
                print(frame)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="ws://127.0.0.1:5007/ws")
    parser.add_argument("--endpoints", default="", help="comma list of endpoint ids (default: all)")
    parser.add_argument("--token", default=None, help="credential, when the server requires one")
    args = parser.parse_args()
    url = args.url + (f"?token={quote(args.token)}" if args.token else "")
    ids = [int(x) for x in args.endpoints.split(",") if x.strip()] or None
    delay = 3.0
    while True:
        try:
            await watch(url, ids)
            delay = 3.0
        except (OSError, websockets.ConnectionClosed, websockets.InvalidHandshake) as exc:
            wait = delay * random.uniform(0.8, 1.2)
            print(f"connection lost ({exc}); retrying in {wait:.1f} s")
            await asyncio.sleep(wait)
            delay = min(30.0, delay * 2)


if __name__ == "__main__":
    asyncio.run(main())
