"""``python -m devcluster``: the whole Switchboard cluster on 127.0.0.1 in one command.

Ports: the load balancer on base (default 8000), gateway *i* on base+i (8001, 8002, ...), the
demo page on base+100 (8100), router, presence and NATS on free ports; with ``--prometheus``, a
local Prometheus scraping them all on base+90 (8090). stdout carries exactly one line,
``READY {"lb": ..., "gateways": [...], "nats": ..., "router": ..., "presence": ...,
"demo": ...}``; the log, each child's output (prefixed ``[name]``) and lines
``devcluster: started NAME pid=PID url=URL`` go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from devcluster import apps, prometheus
from devcluster.cluster import run
from devcluster.layout import DEMO_OFFSET, MAX_GATEWAYS, LayoutError, Options


def parse_args(argv: list[str] | None = None
               ) -> tuple[Options, prometheus.PrometheusOptions | None]:
    """Command line to :class:`Options` (and Prometheus's, when ``--prometheus`` is given);
    defaults live on the option classes alone."""
    defaults = Options()
    prometheus_defaults = prometheus.PrometheusOptions()
    parser = argparse.ArgumentParser(
        prog="python -m devcluster",
        description=(
            "Start NATS, router, presence, N gateways, a round-robin balancer and the demo page "
            f"on 127.0.0.1. The balancer listens on BASE, gateway i on BASE+i, the demo page on "
            f"BASE+{DEMO_OFFSET}; the rest on "
            "free ports. Prints one READY line with every URL to stdout when all are ready. "
            "SB_* variables are passed to every child; SB_JWT_SECRET and SB_API_KEY get "
            "development keys (printed to stderr) when unset."
        ),
    )
    parser.add_argument("--gateways", type=int, default=defaults.gateways, metavar="N",
                        help=f"gateway processes, 1-{MAX_GATEWAYS} (default %(default)s)")
    parser.add_argument("--base-port", type=int, default=defaults.base_port, metavar="P",
                        help="gateway i listens on P+i (default %(default)s)")
    parser.add_argument("--ready-timeout", type=float, default=defaults.ready_timeout,
                        metavar="S", help="seconds each child has to become ready "
                        "(default %(default)s)")
    parser.add_argument("--stop-timeout", type=float, default=defaults.stop_timeout,
                        metavar="S", help="seconds a child has after SIGTERM before SIGKILL "
                        "(default %(default)s)")
    parser.add_argument("--prometheus", action="store_true",
                        help="also run a local Prometheus (a `prometheus` binary on PATH, e.g. "
                        "Debian's package) scraping every service, with the alert rules of "
                        f"deploy/prometheus/; it listens on BASE+{prometheus.PROMETHEUS_OFFSET}")
    parser.add_argument("--prometheus-port", type=int, default=prometheus_defaults.port,
                        metavar="P", help="Prometheus's port instead of "
                        f"BASE+{prometheus.PROMETHEUS_OFFSET}")
    parser.add_argument("--prometheus-interval", type=float,
                        default=prometheus_defaults.interval, metavar="S",
                        help="scrape and rule evaluation interval (default %(default)s)")
    apps.add_arguments(parser)
    args = parser.parse_args(argv)
    options = Options(gateways=args.gateways, base_port=args.base_port,
                      ready_timeout=args.ready_timeout, stop_timeout=args.stop_timeout,
                      app=args.app, app_replicas=args.app_replicas)
    if not args.prometheus:
        return options, None
    return options, prometheus.PrometheusOptions(port=args.prometheus_port,
                                                 interval=args.prometheus_interval)


def main() -> int:
    """Entry point; the exit code is 0 after a requested stop, 1 after any failure."""
    options, prometheus_options = parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="devcluster: %(message)s")
    try:
        environ = apps.environ_for(options, os.environ)
    except LayoutError as exc:
        logging.error("%s", exc)
        return 1
    if prometheus_options is not None:
        return asyncio.run(prometheus.run(options, prometheus_options, environ))
    return asyncio.run(run(options, environ))


if __name__ == "__main__":
    sys.exit(main())
