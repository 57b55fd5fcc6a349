"""Rules & risk service wiring.

Scaffolding from the foundation: the process runs on the chassis (health, reflection,
tracing, graceful shutdown) so the suite's shape is complete; its RPCs arrive with issue 5.
"""

from services.common.server import ServiceSpec, run


async def _register(*_: object) -> None:
    """No RPCs yet."""


SPEC = ServiceSpec(name="rules", service_names=(), register=_register)

if __name__ == "__main__":
    run(SPEC)
