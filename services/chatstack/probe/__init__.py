"""chat-probe: named end-to-end flows against a running chatstack (embedded or behind nginx).

Used by hand, by the Python end-to-end tests and by the NixOS VM tests; see ``cli`` for
the output format. Everything here is a *client* of the public paths in docs/protocol.md.
"""
