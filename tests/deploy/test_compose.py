"""docker-compose.yml, the Dockerfile and the load balancer agree with the code and each other.

A compose file is only checked for real by bringing it up (deploy/smoke.py, by hand); these
tests catch, in a second, what would otherwise surface there: a renamed file, a port that
differs between the service, the load balancer and Prometheus, a setting no service reads.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.files import COMPOSE, DEPLOY, DOCKERFILE, HAPROXY, NATS_CONF, ROOT

SERVICES = {"nats-1", "nats-2", "nats-3", "gateway", "router", "presence", "lb", "prometheus",
            "grafana"}
"""The compose services DESIGN.md's "Deploy layout" names; tools and operators rely on them."""
SWITCHBOARD = ("gateway", "router", "presence")
_SETTING = re.compile(r'"(SB_[A-Z0-9_]+)"')
_INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(:?[-?][^}]*)?\}")


def settings_in_code() -> set[str]:
    """Every ``SB_*`` variable a service reads (declared as a string in the packages)."""
    names: set[str] = set()
    for package in ("shared", "gateway", "router", "presence"):
        for path in (ROOT / package).rglob("*.py"):
            names.update(_SETTING.findall(path.read_text()))
    return names


def port_of(service: dict[str, Any]) -> int:
    return int(service["environment"]["SB_PORT"])


def test_the_services_are_the_documented_ones(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == SERVICES
    assert compose["services"]["grafana"]["profiles"] == ["grafana"]
    assert all("profiles" not in spec for name, spec in compose["services"].items()
               if name != "grafana"), "only Grafana is optional"


def test_switchboard_services_run_the_one_image_with_their_module(
        compose: dict[str, Any]) -> None:
    images = set()
    for name in SWITCHBOARD:
        service = compose["services"][name]
        assert service["command"] == [name]
        assert (ROOT / name / "__main__.py").is_file(), f"python -m {name} does not exist"
        build = service["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
        assert "BASE_IMAGE" in build["args"]
        images.add(service["image"])
    assert len(images) == 1, "one image for every service"


def test_images_are_overridable(compose: dict[str, Any]) -> None:
    """Where no registry is reachable every image can be replaced by a local one."""
    for name, service in compose["services"].items():
        match = _INTERPOLATION.fullmatch(service["image"])
        assert match and match.group(2).startswith(":-"), \
            f"{name}: image {service['image']!r} is not ${{VAR:-default}}"
    nats_images = {compose["services"][f"nats-{n}"]["image"] for n in (1, 2, 3)}
    assert len(nats_images) == 1


def test_gateways_scale_behind_the_load_balancer(compose: dict[str, Any]) -> None:
    gateway = compose["services"]["gateway"]
    assert "ports" not in gateway, "a fixed host port would stop --scale gateway=N"
    assert "container_name" not in gateway
    drain = float(gateway["environment"]["SB_DRAIN_WINDOW_S"])
    grace = float(gateway["stop_grace_period"].removesuffix("s"))
    assert grace >= drain + 5, "compose must give a stopping gateway its whole drain window"
    assert compose["services"]["lb"]["ports"], "the load balancer is the one way in"


def test_every_setting_is_one_a_service_reads(compose: dict[str, Any]) -> None:
    known = settings_in_code()
    for name in SWITCHBOARD:
        environment = compose["services"][name]["environment"]
        unknown = {key for key in environment if key.startswith("SB_")} - known
        assert not unknown, f"{name}: no service reads {sorted(unknown)}"
        assert environment["SB_HOST"] == "0.0.0.0"
        assert environment["SB_STREAM_REPLICAS"] == "3", "R3 on the 3-node NATS cluster"
        urls = environment["SB_NATS_URL"].split(",")
        assert urls == [f"nats://nats-{n}:4222" for n in (1, 2, 3)]


def test_files_the_compose_file_mounts_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in compose["volumes"], f"{name}: undeclared volume {source}"


def test_ports_agree_between_services_lb_and_prometheus(
        compose: dict[str, Any], prometheus_config: dict[str, Any]) -> None:
    jobs = {job["job_name"]: job for job in prometheus_config["scrape_configs"]}
    haproxy = HAPROXY.read_text()
    for name in SWITCHBOARD:
        service = compose["services"][name]
        port = port_of(service)
        assert str(port) in [str(p) for p in service["expose"]]
        (sd,) = jobs[name]["dns_sd_configs"]
        assert sd["names"] == [name] and sd["port"] == port, \
            f"Prometheus job {name} must discover the compose service {name} on {port}"
    assert re.search(rf"server-template \w+ \d+ gateway:{port_of(compose['services']['gateway'])}",
                     haproxy)
    assert re.search(rf"server-template \w+ \d+ router:{port_of(compose['services']['router'])}",
                     haproxy)
    (lb_sd,) = jobs["lb"]["dns_sd_configs"]
    assert lb_sd["names"] == ["lb"] and re.search(rf"bind :{lb_sd['port']}\b", haproxy)
    published = compose["services"]["lb"]["ports"][0].rsplit(":", 1)[1]
    assert re.search(rf"bind :{published}\b", haproxy)


def test_prometheus_discovers_compose_services_by_dns(prometheus_config: dict[str, Any],
                                                      compose: dict[str, Any]) -> None:
    for job in prometheus_config["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            assert set(sd["names"]) <= set(compose["services"]), job["job_name"]
        assert "file_sd_configs" not in job
        if job["job_name"] != "prometheus":
            assert "static_configs" not in job, "replicas come and go: no fixed lists"


def test_nats_cluster_config(compose: dict[str, Any]) -> None:
    conf = NATS_CONF.read_text()
    routes = set(re.findall(r"nats-route://([\w-]+):6222", conf))
    assert routes == {"nats-1", "nats-2", "nats-3"}
    for n in (1, 2, 3):
        service = compose["services"][f"nats-{n}"]
        assert service["environment"]["NATS_SERVER_NAME"] == f"nats-{n}"
        assert any(v.endswith(":/data") for v in service["volumes"]), "JetStream store persists"


def test_nats_server_accepts_the_config() -> None:
    from devcluster.natsserver import find_nats_server

    proc = subprocess.run([find_nats_server(), "-c", str(NATS_CONF), "-t"],
                          env={**os.environ, "NATS_SERVER_NAME": "nats-1"},
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(shutil.which("haproxy") is None,
                    reason="haproxy not installed (Debian: apt-get install haproxy)")
def test_haproxy_accepts_the_config(tmp_path: Path) -> None:
    proc = subprocess.run(["haproxy", "-c", "-f", str(HAPROXY)], capture_output=True,
                          text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _compose_command() -> list[str] | None:
    if shutil.which("docker") and subprocess.run(
            ["docker", "compose", "version"], capture_output=True, check=False).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@pytest.mark.skipif(_compose_command() is None,
                    reason="neither `docker compose` nor `docker-compose` is installed; "
                    "the structure tests above still ran")
def test_compose_validates_the_file() -> None:
    command = _compose_command()
    assert command is not None
    for profile in ([], ["--profile", "grafana"]):
        proc = subprocess.run([*command, "-f", str(COMPOSE), *profile, "config", "--quiet"],
                              capture_output=True, text=True, timeout=60, check=False,
                              cwd=ROOT)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_is_multi_stage_non_root_with_a_healthcheck() -> None:
    text = DOCKERFILE.read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip()
             and not line.lstrip().startswith("#")]
    assert lines[0].startswith("ARG BASE_IMAGE="), "the base image is a build argument"
    froms = [line for line in lines if line.startswith("FROM ")]
    assert len(froms) >= 2 and all("${BASE_IMAGE}" in line for line in froms)
    user = [line for line in lines if line.startswith("USER ")]
    assert user and user[-1].split()[1].split(":")[0].isdigit(), "numeric non-root user"
    assert user[-1].split()[1].split(":")[0] != "0"
    assert any(line.startswith("HEALTHCHECK") for line in lines)
    assert "--no-index" in text and "pip install" in text, "installs from wheels"


def test_every_file_the_dockerfile_copies_exists_and_reaches_the_context() -> None:
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    copies = re.findall(r"^COPY (?!--from)(.+?) \S+$", DOCKERFILE.read_text(), re.MULTILINE)
    assert copies
    for sources in copies:
        for source in sources.split():
            assert (ROOT / source).exists(), f"COPY {source}: no such file"
            clean = source.rstrip("/")
            assert not any(clean == pattern or clean.startswith(pattern + "/")
                           for pattern in ignored), f".dockerignore drops {source}"


def test_healthcheck_script_reports_health(tmp_path: Path) -> None:
    """The image's HEALTHCHECK against something that answers /healthz, and nothing."""
    import http.server
    import threading

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        script = str(DEPLOY / "healthcheck.py")
        healthy = subprocess.run([sys.executable, script], capture_output=True, timeout=10,
                                 env={**os.environ, "SB_PORT": str(server.server_port)},
                                 check=False)
        assert healthy.returncode == 0, healthy.stderr
    finally:
        server.shutdown()
        server.server_close()
    down = subprocess.run([sys.executable, script], capture_output=True, text=True,
                          timeout=10, env={**os.environ, "SB_PORT": str(server.server_port)},
                          check=False)
    assert down.returncode == 1 and "healthz" in down.stderr


def test_smoke_script_knows_its_stand_in_images(compose: dict[str, Any]) -> None:
    """Every image variable the smoke test sets is one the compose file reads, and every
    stand-in Dockerfile it builds exists."""
    spec = importlib.util.spec_from_file_location("deploy_smoke", DEPLOY / "smoke.py")
    assert spec is not None and spec.loader is not None
    smoke = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = smoke  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(smoke)
    finally:
        del sys.modules[spec.name]
    variables = {match.group(1) for service in compose["services"].values()
                 for match in [_INTERPOLATION.fullmatch(service["image"])] if match}
    for variable, (_tag, dockerfile) in smoke.IMAGES.items():
        assert variable in variables
        assert (DEPLOY / "offline" / dockerfile).is_file()
    assert {"NATS_IMAGE", "LB_IMAGE", "PROMETHEUS_IMAGE"} <= set(smoke.IMAGES)
    help_text = subprocess.run([sys.executable, str(DEPLOY / "smoke.py"), "--help"],
                               capture_output=True, text=True, timeout=30, check=True)
    assert "--rebuild-base" in help_text.stdout
