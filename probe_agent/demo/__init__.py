"""`probe-agent demo`: the demo shop and an agent probing it, with the bundled probes file."""

from __future__ import annotations

import logging
import os
from importlib import resources

from probe_agent.config.loader import parse_config

log = logging.getLogger("probe_agent.demo")


def bundled_config_text() -> str:
    return resources.files(__package__).joinpath("probes.yaml").read_text(encoding="utf-8")


async def run_demo(host: str, port: int, shop_host: str, shop_port: int, log_format: str, log_level: str) -> int:
    from probe_agent.daemon import serve
    from probe_agent.demo.shop import start_shop

    shop_url = f"http://{shop_host}:{shop_port}"
    config = parse_config(
        bundled_config_text(),
        "demo probes.yaml",
        {**os.environ, "SHOP_URL": shop_url, "SHOP_HOST": shop_host, "SHOP_PORT": str(shop_port)},
    )
    try:
        shop = await start_shop(shop_host, shop_port)
    except OSError as exc:
        print(
            f"cannot serve the demo shop on {shop_host}:{shop_port}: {exc.strerror}; try --shop-listen 127.0.0.1:PORT"
        )
        return 1
    print(
        f'demo shop:  {shop_url}  (faults: curl -X POST {shop_url}/admin/faults -d \'{{"endpoint":"checkout","mode":"error"}}\')\n'
        f"agent:      http://{host}:{port}/metrics  http://{host}:{port}/health\n"
        "Ctrl-C stops both.",
        flush=True,
    )
    return await serve(config, None, host, port, log_format, log_level, 5.0, extra_cleanup=shop.cleanup)
