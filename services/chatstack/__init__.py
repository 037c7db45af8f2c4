"""chatstack: a websocket chat gateway and a history service on RabbitMQ.

Importing any module of this package has no side effects: no I/O, no global state.
Processes are assembled by the entry points in ``chatstack.cli``.
"""

__version__ = "0.1.0"
