"""Entry point of the gateway process: `python -m gateway.main`."""

from __future__ import annotations

import sys

import uvicorn

from gateway.app import create_app
from gateway.settings import GatewaySettings
from services.common.logs import configure_logging
from services.common.settings import SettingsError
from services.common.telemetry import setup_telemetry


def main() -> None:
    try:
        settings = GatewaySettings.from_env()
    except SettingsError as exc:
        print(f"gateway: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging("gateway", settings.telemetry.log_level)
    telemetry = setup_telemetry(settings.telemetry)
    try:
        uvicorn.run(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_config=None,  # keep our JSON logging
            proxy_headers=True,
            forwarded_allow_ips=settings.forwarded_allow_ips,
            access_log=settings.access_log,
            timeout_graceful_shutdown=3,
        )
    finally:
        telemetry.shutdown()


if __name__ == "__main__":
    main()
