# tools/fleet-secrets as a package (and `nix run .#fleet-secrets`): the script with Python 3
# and the age and openssl commands it calls. Without Nix, run tools/fleet-secrets directly.
{
  lib,
  stdenvNoCC,
  makeWrapper,
  python3,
  age,
  openssl,
}:
stdenvNoCC.mkDerivation {
  pname = "fleet-secrets";
  version = "0.1.0";

  src = lib.fileset.toSource {
    root = ../tools;
    fileset = ../tools/fleet-secrets;
  };

  nativeBuildInputs = [ makeWrapper ];
  # patchShebangs rewrites `#!/usr/bin/env python3` to this Python (3.11+ for tomllib).
  buildInputs = [ python3 ];

  dontConfigure = true;
  dontBuild = true;

  installPhase = ''
    runHook preInstall
    install -Dm755 fleet-secrets "$out/bin/fleet-secrets"
    wrapProgram "$out/bin/fleet-secrets" --prefix PATH : ${
      lib.makeBinPath [
        age
        openssl
      ]
    }
    runHook postInstall
  '';

  meta = {
    description = "Make, rotate, re-encrypt and verify chatstack's agenix secrets from nix/fleet.toml";
    license = lib.licenses.mit;
    mainProgram = "fleet-secrets";
    platforms = lib.platforms.unix;
  };
}
