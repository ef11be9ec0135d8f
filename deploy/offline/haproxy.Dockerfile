# Stand-in for LB_IMAGE where no registry is reachable (deploy/smoke.py): Debian's haproxy,
# installed into the base image by debootstrap. Like the public image, the compose command is
# haproxy's arguments and it runs as the unprivileged haproxy user.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
USER haproxy
ENTRYPOINT ["/usr/sbin/haproxy", "-W", "-db"]
