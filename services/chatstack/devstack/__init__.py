"""The local production-like stack, run as plain processes on one machine.

Submodules, one job each (none does I/O at import):

- ``contract``  reads ``chatstack/contract.toml``, the single source of names and numbers;
- ``pki``       a throw-away CA and server/client certificates made with the openssl CLI;
- ``ports``     free loopback ports and waiting for a port to open;
- ``procs``     starting and stopping child processes with their logs;
- ``definitions`` RabbitMQ users, permissions and topology rendered from the contract;
- ``rabbitmq``  a RabbitMQ node from the system package, started and stopped by hand;
- ``services``  chat-gateway / chat-history configs and processes;
- ``nginx``     nginx.conf rendered from the contract, and the nginx process;
- ``stack``     the orchestrator behind ``make stack`` / ``python -m chatstack.devstack``.

Everything generated (keys, passwords, data, logs) lives under a state directory given by
the caller (``var/stack/`` for ``make stack``, a temporary directory in tests); nothing
secret is ever written into the repository.
"""
