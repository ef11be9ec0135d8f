# Stand-in for PROMETHEUS_IMAGE where no registry is reachable (deploy/smoke.py): Debian's
# prometheus, installed into the base image by debootstrap, with the public image's data
# directory and user.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN mkdir -p /prometheus && chown prometheus:prometheus /prometheus
USER prometheus
WORKDIR /prometheus
ENTRYPOINT ["/usr/bin/prometheus"]
