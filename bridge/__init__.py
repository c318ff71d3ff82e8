"""bridge: trigger-based change capture that keeps independent site databases in sync
through a RabbitMQ cluster.

The path of one change reads top-down through the modules:
capture (SQL templates) -> outbox -> dispatcher -> broker -> consumer -> apply.
"""

__version__ = "0.1.0"
