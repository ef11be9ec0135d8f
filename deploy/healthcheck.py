"""The image's HEALTHCHECK: ``GET /healthz`` on this container's own ``SB_PORT``.

Every service (gateway, router, presence) serves ``/healthz`` on its one HTTP port, so one
probe fits them all. It uses only the standard library because the runtime image carries no
curl or wget. A gateway that serves ``wss://`` itself (``SB_TLS_CERT``) is probed over HTTPS
without verifying the certificate: the probe asks whether the process answers, not who it is.
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.error
import urllib.request


def main() -> int:
    """0 when ``/healthz`` answers 200 within two seconds, 1 otherwise (with the reason)."""
    port = os.environ.get("SB_PORT", "8001")
    tls = bool(os.environ.get("SB_TLS_CERT"))
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/healthz"
    context = ssl._create_unverified_context() if tls else None
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as answer:
            if answer.status == 200:
                return 0
            print(f"healthcheck: {url} answered {answer.status}", file=sys.stderr)
    except (urllib.error.URLError, OSError) as exc:
        print(f"healthcheck: {url}: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
