# The static browser client (services/chatstack/chat_client_demo) as a web root: index.html and
# its assets at the top of $out, for nginx's `root` on the load balancer. The Python package
# ships the same files for the embedded single-process mode.
{
  lib,
  stdenvNoCC,
}:
let
  root = ../services/chatstack/chat_client_demo;
  webExtensions = [
    "html"
    "js"
    "mjs"
    "css"
    "json"
    "webmanifest"
    "svg"
    "png"
    "ico"
    "txt"
  ];
in
stdenvNoCC.mkDerivation {
  pname = "chat-client-demo";
  inherit ((lib.importTOML ../services/pyproject.toml).tool.poetry) version;

  # Only the web files: editing Python code next to them does not rebuild the client.
  src = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.fileFilter (file: lib.any file.hasExt webExtensions) root;
  };

  dontConfigure = true;
  dontBuild = true;

  installPhase = ''
    runHook preInstall
    mkdir -p "$out"
    cp -R . "$out"
    runHook postInstall
  '';

  doInstallCheck = true;
  installCheckPhase = ''
    runHook preInstallCheck
    test -f "$out/index.html"
    runHook postInstallCheck
  '';

  meta = {
    description = "chatstack's static browser client (served by nginx at /)";
    license = lib.licenses.mit;
    platforms = lib.platforms.all;
  };
}
