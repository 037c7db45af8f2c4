# The single source of truth shared by the Python services and the NixOS modules: names,
# ports, routes, AMQP topology and permissions, proxy settings and metric names. The file
# ships inside the Python package (chatstack/contract.toml), so a deployed service reads the
# very file its NixOS configuration was rendered from. This is the only place the path is
# written on the Nix side; tests/repo/test_nix_contract.py checks both facts.
builtins.fromTOML (builtins.readFile ../services/chatstack/contract.toml)
