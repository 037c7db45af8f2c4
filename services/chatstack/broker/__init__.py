"""Brokers: one interface (``base``), two implementations (``memory``, ``rabbitmq``)."""
