"""``python -m router``: the connection registry and the server API for backends."""

from router.server import run
from shared.config import RouterSettings
from shared.service import main

main("router", RouterSettings, run)
