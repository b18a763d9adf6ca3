"""The shipped nginx config (deploy/nginx/bevforge.conf) in front of two live BevForge servers: TLS, wss for
/ws and NiceGUI's Socket.IO, unbuffered SSE, the HTTP → HTTPS redirect, and one browser kept on one instance
until that instance goes down."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import websockets
import yaml

from tests.support.nginx import Nginx
from tests.support.process import ServerProcess

pytestmark = pytest.mark.slow

HLT_VOLUME = 14


class Site:
    """Two instances behind one nginx; each names itself by its site name (health's `site`)."""

    def __init__(self, proxy: Nginx, instances: dict[str, ServerProcess]) -> None:
        self.proxy = proxy
        self.instances = instances


def _named(tmp: Path, name: str) -> ServerProcess:
    server = ServerProcess(tmp, {"mode": "none"})
    doc = yaml.safe_load(server.config.read_text(encoding="utf-8"))
    doc.setdefault("site", {})["name"] = name
    server.config.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return server


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    instances = {}
    for name in ("Instance A", "Instance B"):
        folder = tmp_path / name.replace(" ", "_")
        folder.mkdir()
        instances[name] = _named(folder, name)
    (tmp_path / "nginx").mkdir()
    proxy = Nginx(tmp_path / "nginx", [s.port for s in instances.values()])
    try:
        for server in instances.values():
            await server.start()
        proxy.start()
        yield Site(proxy, instances)
    finally:
        proxy.stop()
        for server in instances.values():
            await server.stop()


async def _site_name(http: httpx.AsyncClient, site: Site) -> str:
    answer = await http.get(f"{site.proxy.base_url}/api/os/health")
    assert answer.status_code == 200
    return answer.json()["site"]


async def test_pages_rest_sse_ws_and_the_screens_socket_work_through_nginx_over_tls(site: Site) -> None:
    proxy = site.proxy
    async with httpx.AsyncClient(verify=proxy.tls(), timeout=10) as http:
        assert await _site_name(http, site) in site.instances
        page = await http.get(f"{proxy.base_url}/")
        assert page.status_code == 200 and "BevForge" in page.text

        async with http.stream("GET", f"{proxy.base_url}/api/os/events") as events:  # SSE, unbuffered
            assert events.headers["content-type"].startswith("text/event-stream")
            async for line in events.aiter_lines():
                if line.startswith("data:"):
                    assert json.loads(line[5:])["type"]
                    break

    async with websockets.connect(f"{proxy.wss_url}/ws", ssl=proxy.tls(), origin=proxy.base_url,  # type: ignore[arg-type]
                                  open_timeout=10) as ws:
        assert json.loads(await ws.recv())["type"] == "connected"
        await ws.send(json.dumps({"type": "subscribe", "channel": "telemetry", "endpointIds": [HLT_VOLUME]}))
        frames = [json.loads(await ws.recv()) for _ in range(2)]
        assert frames[0]["type"] == "subscribed"
        assert frames[1]["type"] == "telemetry" and frames[1]["endpointId"] == HLT_VOLUME

    # NiceGUI's Socket.IO (every screen's live connection): the Engine.IO open packet arrives over wss, with
    # the browser's https origin accepted (nginx forwards the Host with its port, and the scheme)
    async with websockets.connect(f"{proxy.wss_url}/_nicegui_ws/socket.io/?EIO=4&transport=websocket",
                                  ssl=proxy.tls(), origin=proxy.base_url, open_timeout=10) as sio:  # type: ignore[arg-type]
        opened = await sio.recv()
        assert isinstance(opened, str) and opened.startswith("0{") and "sid" in opened

    async with httpx.AsyncClient(timeout=10) as plain:
        redirect = await plain.get(f"http://127.0.0.1:{proxy.http_port}/alarms?kiosk=1")
        assert redirect.status_code == 301
        assert redirect.headers["location"] == "https://127.0.0.1/alarms?kiosk=1"
        # an iSpindel posts plain HTTP and follows no redirect: its path reaches BevForge on port 80 (these
        # instances have no hydrometer, so the answer is BevForge's own 401, not nginx's 301)
        posted = await plain.post(f"http://127.0.0.1:{proxy.http_port}/api/hydrometers/ispindel/fv1/not-a-token",
                                  json={"name": "iSpindel001"})
        assert posted.status_code == 401 and posted.json()["field"] == "token"


async def test_one_browser_stays_on_one_instance_and_moves_when_it_goes_down(site: Site) -> None:
    async with httpx.AsyncClient(verify=site.proxy.tls(), timeout=10) as http:
        answered = {await _site_name(http, site) for _ in range(12)}
        assert len(answered) == 1  # the page, its Socket.IO and its REST calls all reach the process that drew it
        (first,) = answered
        await site.instances[first].stop()
        moved = await _site_name(http, site)
        assert moved != first and moved in site.instances
        assert {await _site_name(http, site) for _ in range(5)} == {moved}
