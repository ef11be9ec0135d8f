"""``python -m examples.orderbook``: serve ``/orders`` until SIGTERM."""

from examples.orderbook.worker import app

app.run()
