"""The runtime the screens show. Set once by the entry point; pages read it per request."""

from __future__ import annotations

from bevforge.runtime import Runtime

runtime: Runtime | None = None


def current() -> Runtime:
    if runtime is None:
        raise RuntimeError("the screens were installed without a runtime")
    return runtime
