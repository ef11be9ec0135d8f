"""``python -m router``: the connection registry and the server API for backends."""

from router.server import run
from router.settings import RouterApiSettings
from shared.service import main

main("router", RouterApiSettings, run)
