# chatstack's Python package: both services, the `chatstack` and `chat-probe` CLIs, the bundled
# browser client and contract.toml, built with poetry2nix from services/pyproject.toml and
# services/poetry.lock. The unit and property tests run in the check phase.
#
# This is the only file that knows about poetry2nix. Moving to uv2nix (what poetry2nix's
# maintainers recommend) means rewriting this file and nothing else; `passthru.devEnv` is the
# one extra thing callers use (the dev shell).
#
# poetry2nix (pinned at ce2369db, unmaintained) has code that fails with nixpkgs >= 25.05 and
# current Nix daemons. This build does not reach it (docs/deploying.md, "poetry2nix"):
# - Downloads. poetry2nix's fetchFromPypi (fetchers/default.nix) runs fetch-from-pypi.sh, which
#   does `set -euo pipefail` (line 5) and then expands `$NIX_CURL_FLAGS` (line 18). Newer daemons
#   leave that variable unset, so every download fails. mk-poetry-dep.nix takes `fetchFromPypi`
#   as a callPackage argument from the Python package set (mk-poetry-dep.nix lines 10 and 236;
#   default.nix line 249), and user overrides are composed after poetry2nix's own layer
#   (default.nix lines 233-277). The override below puts our fetcher there, so poetry2nix's
#   fetcher derivation is never created. Ours is nixpkgs' fetchurl of the same file from PyPI's
#   predictable URL, checked against the sha256 in poetry.lock.
# - rustPlatform.fetchCargoTarball (removed in 25.05) and darwin.apple_sdk (removed in 25.11)
#   are only used in poetry2nix's overrides for packages outside our closure. The optional dev
#   group (ruff, mypy) is never built here. Lazy evaluation means those overrides never run.
# - Wheel selection. poetry2nix's vendored pyproject.nix (vendor/pyproject.nix/lib/pep599.nix)
#   has no riscv64 entry, and pep600.nix line 72 / pep656.nix line 46 index that table with the
#   wheel's architecture. tornado and hypothesis ship manylinux riscv64 wheels, so choosing
#   among their files fails to evaluate ("attribute 'riscv64' missing"). The choice is forced
#   even without preferWheels, because mk-poetry-dep.nix line 98 takes the length of the
#   candidate list. Two more cases break in the same place: platform tags pypa.nix does not
#   know (e.g. pyemscripten) throw at pypa.nix line 301, and compressed ABI tags such as
#   hypothesis's `abi3.abi3t` fail the assertion at pypa.nix line 103. So before poetry2nix
#   sees a package, `mkPoetryDep` below removes every wheel it cannot parse, and every wheel
#   that is neither pure Python nor for Linux on x86_64/aarch64. The sdists stay.
# - preferWheels: every locked package of the main and test groups has a wheel for CPython 3.13
#   on x86_64-linux and aarch64-linux. So no sdist builds run, and none of the sdist-only
#   overrides either.
# There is no import-from-derivation: the lock is read with builtins.fromTOML and the URLs are
# computed during evaluation.
{
  lib,
  pkgs,
  fetchurl,
  python313,
  poetry2nix,
}:
let
  p2n = poetry2nix.lib.mkPoetry2Nix { inherit pkgs; };

  pyproject = ../services/pyproject.toml;
  poetrylock = ../services/poetry.lock;
  lock = lib.importTOML poetrylock;

  # nixos-26.05's default python3 is 3.13. It is pinned here so the choice of wheels from
  # poetry.lock does not change silently when the default moves.
  python = python313;

  # PyPI's predictable file URL: /packages/<python tag>/<first letter>/<project>/<file>. PyPI's
  # redirector ("conveyor") answers it when the tag is the file's python_version ("source" for an
  # sdist, the wheel's python tag otherwise). nixpkgs' fetchPypi uses the same scheme.
  pypiUrl =
    pname: file:
    let
      wheel = builtins.match "[^-]+-[^-]+(-[0-9][^-]*)?-([^-]+)-[^-]+-[^-]+[.]whl" file;
      tag = if wheel == null then "source" else builtins.elemAt wheel 1;
    in
    "https://files.pythonhosted.org/packages/${tag}/${builtins.substring 0 1 pname}/${pname}/${file}";

  # Same arguments as poetry2nix's fetchFromPypi (pname, file, version, hash).
  fetchFromPypi = lib.makeOverridable (
    {
      pname,
      file,
      hash,
      ...
    }:
    fetchurl {
      url = pypiUrl pname file;
      sha256 =
        lib.throwIfNot (lib.hasPrefix "sha256:" hash)
          "nix/package.nix: ${file} in poetry.lock has a non-sha256 hash (${hash})"
          (lib.removePrefix "sha256:" hash);
      # poetry2nix's overrides test `old.src.isWheel`, which its own fetcher sets.
      passthru.isWheel = lib.hasSuffix ".whl" file;
    }
  );

  # Keep sdists, and wheels that poetry2nix's vendored pyproject.nix can parse and that are
  # pure Python or for Linux on the systems we build for; see the wheel-selection note above.
  usableFile =
    { file, ... }:
    let
      wheel = builtins.match "[^-]+-[^-]+(-[0-9][^-]*)?-([^-]+)-([^-]+)-([^-]+)[.]whl" file;
      tags = n: lib.splitString "." (builtins.elemAt wheel n);
      # pypa.nix parsePythonTag (per dotted part) and parseABITag (whole tag, no dots).
      pythonTagOk = tag: builtins.match "[a-z]+[0-9]*" tag != null;
      abiTagOk = builtins.match "[a-z]+[0-9]*_?[a-z0-9]*" (builtins.elemAt wheel 2) != null;
      platformTagOk =
        tag:
        tag == "any"
        || (
          lib.any (os: lib.hasPrefix os tag) [
            "manylinux"
            "musllinux"
            "linux_"
          ]
          && lib.any (arch: lib.hasSuffix "_${arch}" tag) [
            "x86_64"
            "aarch64"
          ]
        );
    in
    wheel == null || (lib.all pythonTagOk (tags 1) && abiTagOk && lib.all platformTagOk (tags 3));

  # Every dependency must come from PyPI. poetry2nix fetches git, url and legacy-index sources
  # without this fetcher.
  checkedLock =
    let
      others = map (p: p.name) (lib.filter (p: p ? source) lock.package);
    in
    lib.throwIf (others != [ ])
      "nix/package.nix: poetry.lock has non-PyPI sources (${toString others}); add them to the fetcher"
      poetrylock;

  common = {
    inherit pyproject python;
    poetrylock = checkedLock;
    preferWheels = true;
    overrides = p2n.defaultPoetryOverrides.extend (
      _final: prev: {
        inherit fetchFromPypi;
        mkPoetryDep = args: prev.mkPoetryDep (args // { files = lib.filter usableFile args.files; });
      }
    );
  };

  # Only what the build and the check phase read. Editing the top-level README, the docs, the
  # Nix files or the repo-level tests does not rebuild the package.
  src = lib.fileset.toSource {
    root = ../services;
    fileset = lib.fileset.intersection (lib.fileset.fileFilter (file: !file.hasExt "pyc") ../services) (
      lib.fileset.unions [
        pyproject
        poetrylock
        ../services/README.md # poetry-core reads `readme` into the wheel's metadata
        ../services/chatstack
        ../services/tests
      ]
    );
  };

  app = p2n.mkPoetryApplication (
    common
    // {
      inherit src;
      groups = [ "main" ];
      # The test group (pytest, hypothesis, pytest-timeout) becomes the check inputs.
      checkGroups = [ "test" ];

      # Unit, property, handler and embedded end-to-end tests. Tests marked `integration` need
      # a RabbitMQ; `make test` runs them against one it starts (the NixOS VM tests check the
      # same paths on the fleet's hosts with chat-probe). Some tests start the console
      # scripts from next to sys.executable, as in a virtualenv, so the interpreter runs from
      # a directory that also holds the installed scripts. The package must also ship the
      # files the services read at run time.
      checkPhase = ''
        runHook preCheck
        export HOME="$(mktemp -d)"
        bin="$(mktemp -d)"
        ln -s "$(command -v python)" "$bin/python"
        ln -s "$out"/bin/* "$bin/"
        "$bin/python" -m pytest -p no:cacheprovider -m "not integration" tests
        test -f "$out/${python.sitePackages}/chatstack/contract.toml"
        test -f "$out/${python.sitePackages}/chatstack/chat_client_demo/index.html"
        runHook postCheck
      '';
      pythonImportsCheck = [ "chatstack" ];

      meta.mainProgram = "chatstack";
    }
  );

  # Python with the main and test groups, for the dev shell. It runs the code in ./services
  # from the working tree (PYTHONPATH is set by the shell).
  devEnv = p2n.mkPoetryEnv (
    common
    // {
      groups = [
        "main"
        "test"
      ];
      checkGroups = [ ];
    }
  );
in
lib.extendDerivation true { inherit devEnv; } app
