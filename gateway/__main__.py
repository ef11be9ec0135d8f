"""``python -m gateway``: one gateway process (settings from ``SB_*`` variables)."""

from gateway.server import run
from shared.config import GatewaySettings
from shared.service import main

main("gateway", GatewaySettings, run)
