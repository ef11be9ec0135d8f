"""A network-fault harness: clients in a network namespace of their own, behind a veth pair
whose namespace end the tests can silence, take down or thin out, while nats-server and the
gateways stay on the host."""
