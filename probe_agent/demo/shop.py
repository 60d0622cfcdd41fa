"""The demo shop: a small in-memory aiohttp app that probe-agent's demo, tests and docker-compose probe.

Endpoints: /health/liveness, /health/readiness, signup, login, profile,
account deletion, cart, checkout, order lookup and cancel. A fault switch
(POST /admin/faults, or DEMO_FAULTS=endpoint=mode,...) makes one endpoint
slow, fail with 500, or answer a wrong body, so a real failure can be shown.
Requests carrying the synthetic marker header are counted apart from real ones.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

MARKER_HEADER = "X-Synthetic-Probe"
FAULT_MODES = ("slow", "error", "wrong_body")
PRICES = {"sku-coffee": 450, "sku-mug": 1200, "sku-beans": 1800}
TEST_PAYMENT_TOKEN = "tok_test_visa"


@dataclass
class Fault:
    mode: str
    delay: float = 5.0


@dataclass
class ShopState:
    users: dict[str, dict[str, Any]] = field(default_factory=dict)  # email -> user
    sessions: dict[str, str] = field(default_factory=dict)  # token -> email
    carts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # email -> items
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: dict[str, Fault] = field(default_factory=dict)  # route name -> fault
    requests: dict[str, int] = field(default_factory=lambda: {"synthetic": 0, "real": 0})


STATE_KEY = web.AppKey("shop_state", ShopState)


def parse_faults(spec: str) -> dict[str, Fault]:
    """'checkout=error,readiness=slow:3' -> faults by endpoint."""
    faults = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        endpoint, _, mode = item.partition("=")
        mode, _, delay = mode.partition(":")
        if mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {mode!r} for {endpoint!r}: use one of {', '.join(FAULT_MODES)}")
        faults[endpoint] = Fault(mode, float(delay) if delay else 5.0)
    return faults


@web.middleware
async def faults_and_counts(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    if not request.path.startswith("/admin"):
        state.requests["synthetic" if MARKER_HEADER in request.headers else "real"] += 1
    route = request.match_info.route.name
    fault = state.faults.get(route or "")
    if fault is None:
        return await handler(request)
    if fault.mode == "slow":
        await asyncio.sleep(fault.delay)
        return await handler(request)
    if fault.mode == "error":
        return web.json_response({"error": "internal error (injected fault)"}, status=500)
    return web.json_response({"unexpected": True})  # wrong_body: 200 with a body no client expects


def _user(request: web.Request) -> dict[str, Any]:
    state = request.app[STATE_KEY]
    auth = request.headers.get("Authorization", "")
    email = state.sessions.get(auth.removeprefix("Bearer ").strip()) if auth.startswith("Bearer ") else None
    if email is None or email not in state.users:
        raise web.HTTPUnauthorized(text='{"error": "login required"}', content_type="application/json")
    return state.users[email]


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text='{"error": "body must be JSON"}', content_type="application/json") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='{"error": "body must be a JSON object"}', content_type="application/json")
    return body


async def liveness(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readiness(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "checks": {"database": "ok", "payments": "ok"}})


async def signup(request: web.Request) -> web.Response:
    body = await _json(request)
    email, password = str(body.get("email", "")), str(body.get("password", ""))
    if "@" not in email or len(password) < 8:
        return web.json_response({"error": "email and a password of 8+ characters required"}, status=400)
    state = request.app[STATE_KEY]
    if email in state.users:
        return web.json_response({"error": "email already registered"}, status=409)
    user = {"id": str(uuid.uuid4()), "email": email, "password": password}
    state.users[email] = user
    return web.json_response({"id": user["id"], "email": email}, status=201)


async def login(request: web.Request) -> web.Response:
    body = await _json(request)
    state = request.app[STATE_KEY]
    user = state.users.get(str(body.get("email", "")))
    if user is None or user["password"] != body.get("password"):
        return web.json_response({"error": "invalid email or password"}, status=401)
    token = secrets.token_urlsafe(24)
    state.sessions[token] = user["email"]
    response = web.json_response({"token": token})
    response.set_cookie("session", token, httponly=True)
    return response


async def profile(request: web.Request) -> web.Response:
    user = _user(request)
    return web.json_response({"id": user["id"], "email": user["email"]})


async def delete_account(request: web.Request) -> web.Response:
    user = _user(request)
    state = request.app[STATE_KEY]
    state.users.pop(user["email"], None)
    state.carts.pop(user["email"], None)
    for token in [t for t, e in state.sessions.items() if e == user["email"]]:
        del state.sessions[token]
    return web.Response(status=204)


async def add_to_cart(request: web.Request) -> web.Response:
    user = _user(request)
    body = await _json(request)
    sku, quantity = body.get("sku"), body.get("quantity", 1)
    if sku not in PRICES or not isinstance(quantity, int) or quantity < 1:
        return web.json_response({"error": f"unknown sku or bad quantity; skus: {sorted(PRICES)}"}, status=400)
    cart = request.app[STATE_KEY].carts.setdefault(user["email"], [])
    cart.append({"sku": sku, "quantity": quantity})
    return web.json_response({"items": cart}, status=201)


async def checkout(request: web.Request) -> web.Response:
    user = _user(request)
    body = await _json(request)
    state = request.app[STATE_KEY]
    cart = state.carts.get(user["email"])
    if not cart:
        return web.json_response({"error": "cart is empty"}, status=400)
    if body.get("payment_token") != TEST_PAYMENT_TOKEN:
        return web.json_response({"error": "payment declined"}, status=402)
    order_id = str(uuid.uuid4())
    total = sum(PRICES[i["sku"]] * i["quantity"] for i in cart)
    state.orders[order_id] = {
        "order_id": order_id,
        "email": user["email"],
        "status": "confirmed",
        "total_cents": total,
        "items": cart,
    }
    state.carts[user["email"]] = []
    return web.json_response({"order_id": order_id, "status": "confirmed", "total_cents": total}, status=201)


def _order(request: web.Request) -> dict[str, Any]:
    user = _user(request)
    order = request.app[STATE_KEY].orders.get(request.match_info["order_id"])
    if order is None or order["email"] != user["email"]:
        raise web.HTTPNotFound(text='{"error": "no such order"}', content_type="application/json")
    return order


async def get_order(request: web.Request) -> web.Response:
    order = _order(request)
    return web.json_response({k: v for k, v in order.items() if k != "email"})


async def cancel_order(request: web.Request) -> web.Response:
    order = _order(request)
    order["status"] = "cancelled"
    return web.json_response({"order_id": order["order_id"], "status": "cancelled"})


async def set_fault(request: web.Request) -> web.Response:
    body = await _json(request)
    endpoint, mode = str(body.get("endpoint", "")), str(body.get("mode", ""))
    if endpoint not in ROUTE_NAMES or mode not in FAULT_MODES:
        return web.json_response(
            {"error": f"endpoint one of {sorted(ROUTE_NAMES)}, mode one of {list(FAULT_MODES)}"}, status=400
        )
    request.app[STATE_KEY].faults[endpoint] = Fault(mode, float(body.get("delay", 5.0)))
    return web.json_response({"faults": {k: v.mode for k, v in request.app[STATE_KEY].faults.items()}})


async def clear_faults(request: web.Request) -> web.Response:
    request.app[STATE_KEY].faults.clear()
    return web.json_response({"faults": {}})


async def stats(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return web.json_response(
        {
            "requests": state.requests,
            "users": len(state.users),
            "orders": {
                s: sum(1 for o in state.orders.values() if o["status"] == s) for s in ("confirmed", "cancelled")
            },
            "faults": {k: v.mode for k, v in state.faults.items()},
        }
    )


ROUTES = [
    ("GET", "/health/liveness", liveness, "liveness"),
    ("GET", "/health/readiness", readiness, "readiness"),
    ("POST", "/api/signup", signup, "signup"),
    ("POST", "/api/login", login, "login"),
    ("GET", "/api/profile", profile, "profile"),
    ("DELETE", "/api/account", delete_account, "delete_account"),
    ("POST", "/api/cart/items", add_to_cart, "cart"),
    ("POST", "/api/checkout", checkout, "checkout"),
    ("GET", "/api/orders/{order_id}", get_order, "order"),
    ("POST", "/api/orders/{order_id}/cancel", cancel_order, "cancel_order"),
]
ROUTE_NAMES = {name for *_, name in ROUTES}


def make_shop(faults: str | None = None) -> web.Application:
    app = web.Application(middlewares=[faults_and_counts])
    state = ShopState()
    state.faults = parse_faults(faults if faults is not None else os.environ.get("DEMO_FAULTS", ""))
    app[STATE_KEY] = state
    for method, path, handler, name in ROUTES:
        app.router.add_route(method, path, handler, name=name)
    app.router.add_post("/admin/faults", set_fault)
    app.router.add_delete("/admin/faults", clear_faults)
    app.router.add_get("/admin/stats", stats)
    return app


async def start_shop(host: str, port: int, faults: str | None = None) -> web.AppRunner:
    runner = web.AppRunner(make_shop(faults), access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_address=True).start()
    return runner


def main() -> None:
    """`python -m probe_agent.demo.shop` serves the shop alone (docker-compose uses this)."""
    host = os.environ.get("SHOP_HOST", "127.0.0.1")
    port = int(os.environ.get("SHOP_PORT", "8080"))
    web.run_app(make_shop(), host=host, port=port, access_log=None)


if __name__ == "__main__":
    main()
