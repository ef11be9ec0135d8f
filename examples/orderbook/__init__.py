"""A live order book: the application logic of ``/orders`` as a Switchboard worker.

Run it in the local cluster with ``python -m devcluster --app examples.orderbook`` (its
``namespaces.toml`` declares ``/orders``; the page is served at ``/orderbook/`` of the demo
server), or on its own with ``python -m examples.orderbook`` (``SB_NATS_URL``,
``SB_SUBJECT_PREFIX``, ``SB_ORDERBOOK_API_KEY``).
"""
