"""Configuration: one TOML file, single-key environment overrides, checked before start.

Every key is declared once in ``_FIELDS`` with its parser and default. A bad value raises
``ConfigError`` naming the key, the value, where it came from and what was expected; the
entry points turn it into one line on stderr and exit code 2. docs/configuration.md is the
reference for users.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import socket
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import capacity, contract

ROLES = ("gateway", "history", "serve")
ENV_PREFIX = "CHATSTACK_"
CONFIG_ENV = "CHATSTACK_CONFIG"
# Key names that would hold a secret as a value; secrets come only from *_file keys.
_SECRET_NAMES = {"password", "secret", "key", "pass", "token"}


class ConfigError(Exception):
    def __init__(self, key: str, value: object, expected: str, source: str = "") -> None:
        self.key, self.value, self.expected, self.source = key, value, expected, source
        where = f" (from {source})" if source else ""
        super().__init__(f"{key} = {value!r}{where}: expected {expected}")


class _Invalid(ValueError):
    """Raised by parsers with the expectation text; wrapped into ConfigError by the loader."""


# --- parsers: (value, from_env) -> parsed value -------------------------------------------


def _int(minimum: int, maximum: int | None = None) -> Callable[[Any, bool], int]:
    expected = (
        f"an integer between {minimum} and {maximum}"
        if maximum is not None
        else f"an integer >= {minimum}"
    )

    def parse(value: Any, from_env: bool) -> int:
        if from_env and isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise _Invalid(expected) from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(expected)
        if value < minimum or (maximum is not None and value > maximum):
            raise _Invalid(expected)
        return value

    return parse


_port = _int(1, 65535)


def _positive_float(value: Any, from_env: bool) -> float:
    expected = "a number > 0"
    if from_env and isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise _Invalid(expected) from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(expected)
    if not math.isfinite(value) or value <= 0:
        raise _Invalid(expected)
    return float(value)


# A dead gateway's members must leave everyone's list within 30 s (lease + one sweep).
MAX_MEMBERS_LEASE_S = 29.0


def _lease(value: Any, from_env: bool) -> float:
    lease = _positive_float(value, from_env)
    if lease > MAX_MEMBERS_LEASE_S:
        raise _Invalid(f"a number of seconds > 0 and <= {MAX_MEMBERS_LEASE_S:g}")
    return lease


def _bool(value: Any, from_env: bool) -> bool:
    if from_env and isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
    if isinstance(value, bool):
        return value
    raise _Invalid("true or false")


def _string(value: Any, from_env: bool) -> str:
    if not isinstance(value, str):
        raise _Invalid("a string")
    return value


def _nonempty(value: Any, from_env: bool) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid("a non-empty string")
    return value


def _choice(*choices: str) -> Callable[[Any, bool], str]:
    def parse(value: Any, from_env: bool) -> str:
        if from_env and isinstance(value, str):
            value = value.strip()
        if value not in choices:
            raise _Invalid("one of " + ", ".join(repr(c) for c in choices))
        return str(value)

    return parse


def _origins(value: Any, from_env: bool) -> tuple[str, ...]:
    expected = 'a list of origins like ["https://chat.example.com"]'
    if from_env and isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                raise _Invalid(expected) from None
        else:
            value = [part.strip() for part in text.split(",") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Invalid(expected)
    origins = []
    for origin in value:
        scheme, sep, rest = origin.partition("://")
        if scheme not in ("http", "https") or not sep or not rest or "/" in rest.rstrip("/"):
            raise _Invalid(expected + f" (scheme://host[:port], got {origin!r})")
        origins.append(f"{scheme}://{rest.rstrip('/').lower()}")
    return tuple(origins)


def _hosts(value: Any, from_env: bool) -> tuple[str, ...] | None:
    expected = 'a list of host names like ["chat.example.com"], or ["*"] for any'
    if from_env and isinstance(value, str):
        text = value.strip()
        try:
            value = json.loads(text) if text.startswith("[") else text.split(",")
        except ValueError:
            raise _Invalid(expected) from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Invalid(expected)
    hosts = [v.strip().lower().rstrip(".") for v in value if v.strip()]
    if "*" in hosts:
        return None  # any Host: the proxy in front checks it
    for host in hosts:
        if not host or any(ch in host for ch in "/:@ ") or host.startswith("."):
            raise _Invalid(expected + f" (a bare host name without port, got {host!r})")
    return tuple(hosts)


# --- the schema ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    parse: Callable[[Any, bool], Any]
    default: Callable[[str], Any]  # role -> default


def _const(value: Any) -> Callable[[str], Any]:
    return lambda role: value


def _limit(name: str) -> Callable[[str], Any]:
    return lambda role: contract.section("limits")[name]


def _connections(name: str) -> Callable[[str], Any]:
    return lambda role: contract.section("connections")[name]


def _default_hosts(role: str) -> tuple[str, ...] | None:
    # The embedded server is what a browser reaches directly: DNS rebinding must not reach
    # it. The services behind nginx leave the Host check to nginx's default server.
    return () if role == "serve" else None


def _default_port(role: str) -> int:
    return contract.port({"gateway": "gateway", "history": "history", "serve": "embedded"}[role])


def _default_user(role: str) -> str:
    users = contract.amqp("users")
    return str(users[role]["name"]) if role in users else ""


_FIELDS: dict[str, _Field] = {
    "instance": _Field(_string, _const("")),
    "http.host": _Field(_nonempty, _const("127.0.0.1")),
    "http.port": _Field(_port, _default_port),
    "http.xheaders": _Field(_bool, _const(False)),
    "http.shutdown_timeout_s": _Field(_positive_float, _const(10.0)),
    "http.static_dir": _Field(_string, _const("")),
    "http.max_connections": _Field(
        _int(1), lambda r: capacity.max_connections(contract.section("connections"))
    ),
    "http.header_timeout_s": _Field(
        _positive_float, lambda r: float(contract.section("connections")["header_timeout_s"])
    ),
    "http.allowed_hosts": _Field(_hosts, _default_hosts),
    "gateway.allowed_origins": _Field(_origins, _const(())),
    "gateway.ping_interval_s": _Field(
        _positive_float, lambda r: float(contract.section("websocket")["ping_interval_s"])
    ),
    "gateway.ping_timeout_s": _Field(
        _positive_float, lambda r: float(contract.section("websocket")["ping_timeout_s"])
    ),
    "gateway.idempotency_ttl_s": _Field(_positive_float, _const(600.0)),
    "gateway.max_connections_per_address": _Field(_int(1), _connections("per_address")),
    "gateway.presence_coalesce_ms": _Field(_int(0, 60000), _limit("presence_coalesce_ms")),
    "gateway.failover_after_s": _Field(_positive_float, _const(15.0)),
    "gateway.members_lease_s": _Field(
        _lease, lambda r: float(contract.section("limits")["members_lease_s"])
    ),
    "limits.max_text_bytes": _Field(_int(1), _limit("max_text_bytes")),
    "limits.max_rooms": _Field(_int(1), _limit("max_rooms")),
    "limits.rate_per_s": _Field(_positive_float, _limit("rate_per_s")),
    "limits.burst": _Field(_int(1), _limit("burst")),
    "limits.max_errors": _Field(_int(1), _limit("max_errors")),
    "limits.abuse_window_s": _Field(_positive_float, _limit("abuse_window_s")),
    "limits.max_frame_bytes": _Field(_int(256), _limit("max_frame_bytes")),
    "limits.join_rate_per_s": _Field(_positive_float, _limit("join_rate_per_s")),
    "limits.join_burst": _Field(_int(1), _limit("join_burst")),
    "limits.max_unsent_bytes": _Field(_int(1024), _limit("max_unsent_bytes")),
    "limits.max_unsent_frames": _Field(_int(1), _limit("max_unsent_frames")),
    "limits.send_buffer_bytes": _Field(_int(0), _limit("send_buffer_bytes")),
    "broker.kind": _Field(
        _choice("rabbitmq", "memory"), lambda r: "memory" if r == "serve" else "rabbitmq"
    ),
    "broker.host": _Field(_nonempty, _const("127.0.0.1")),
    "broker.port": _Field(_port, _const(None)),  # None: amqps or amqp port by broker.tls
    "broker.vhost": _Field(_nonempty, lambda r: contract.amqp("vhost")),
    "broker.user": _Field(_nonempty, _default_user),
    "broker.password_file": _Field(_string, _const("")),
    "broker.tls": _Field(_bool, _const(True)),
    "broker.ca_file": _Field(_string, _const("")),
    "broker.cert_file": _Field(_string, _const("")),
    "broker.key_file": _Field(_string, _const("")),
    "broker.server_name": _Field(_string, _const("")),
    "broker.heartbeat_s": _Field(_int(0, 3600), lambda r: contract.amqp("heartbeat_s")),
    "broker.blocked_connection_timeout_s": _Field(
        _positive_float, lambda r: float(contract.amqp("blocked_connection_timeout_s"))
    ),
    "broker.reconnect_initial_s": _Field(_positive_float, _const(0.5)),
    "broker.reconnect_max_s": _Field(_positive_float, _const(10.0)),
    "broker.publish_timeout_s": _Field(_positive_float, _const(10.0)),
    "history.database": _Field(_nonempty, _const("history.sqlite3")),
    "statsd.host": _Field(_string, _const("")),
    "statsd.port": _Field(_port, lambda r: contract.port("statsd")),
    "statsd.prefix": _Field(_nonempty, lambda r: contract.section("statsd")["prefix"]),
    "log.level": _Field(_choice("DEBUG", "INFO", "WARNING", "ERROR"), _const("INFO")),
    "process.event_loop": _Field(_choice("uvloop", "asyncio"), _const("uvloop")),
}
_SECTIONS = {key.split(".")[0] for key in _FIELDS if "." in key}


# --- the result ----------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpConfig:
    host: str
    port: int
    xheaders: bool
    shutdown_timeout_s: float
    static_dir: Path | None
    max_connections: int
    header_timeout_s: float
    # None: any Host (checked by the proxy in front); else these names, localhost and IPs.
    allowed_hosts: tuple[str, ...] | None


@dataclass(frozen=True)
class GatewayConfig:
    allowed_origins: tuple[str, ...]
    ping_interval_s: float
    ping_timeout_s: float
    idempotency_ttl_s: float
    max_connections_per_address: int
    presence_coalesce_ms: int
    failover_after_s: float
    members_lease_s: float = 15.0


@dataclass(frozen=True)
class Limits:
    max_text_bytes: int
    max_rooms: int
    rate_per_s: float
    burst: int
    max_errors: int
    abuse_window_s: float
    max_frame_bytes: int
    join_rate_per_s: float
    join_burst: int
    max_unsent_bytes: int
    max_unsent_frames: int
    send_buffer_bytes: int

    def announced(self) -> dict[str, Any]:
        """The limits a client learns from the welcome frame."""
        return {
            "max_text_bytes": self.max_text_bytes,
            "max_rooms": self.max_rooms,
            "rate_per_s": self.rate_per_s,
            "burst": self.burst,
        }


@dataclass(frozen=True)
class BrokerConfig:
    kind: str
    host: str
    port: int
    vhost: str
    user: str
    password: str = field(repr=False)
    tls: bool
    ca_file: Path | None
    cert_file: Path | None
    key_file: Path | None
    server_name: str
    heartbeat_s: int
    blocked_connection_timeout_s: float
    reconnect_initial_s: float
    reconnect_max_s: float
    publish_timeout_s: float


@dataclass(frozen=True)
class StatsdConfig:
    host: str
    port: int
    prefix: str

    @property
    def enabled(self) -> bool:
        return bool(self.host)


@dataclass(frozen=True)
class Config:
    role: str
    instance: str
    http: HttpConfig
    gateway: GatewayConfig
    limits: Limits
    broker: BrokerConfig
    history_database: Path
    statsd: StatsdConfig
    log_level: str
    source: str
    event_loop: str


# --- loading -------------------------------------------------------------------------------


def _flatten(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in data.items():
        if isinstance(value, dict):
            if name not in _SECTIONS:
                raise ConfigError(
                    f"[{name}]", "section", "a known section (see docs/configuration.md)", source
                )
            for key, inner in value.items():
                flat[f"{name}.{key}"] = inner
        else:
            flat[name] = value
    return flat


def _check_key(key: str, value: Any, source: str) -> None:
    last = key.rsplit(".", 1)[-1]
    if last in _SECRET_NAMES:
        raise ConfigError(
            key, "<hidden>", f"no secret as a value: put it in a file and set {last}_file", source
        )
    if key not in _FIELDS:
        raise ConfigError(key, value, "a known key (see docs/configuration.md)", source)


def _env_key(name: str) -> str:
    body = name[len(ENV_PREFIX) :].lower()
    return body.replace("__", ".")


def variable_key(name: str) -> str | None:
    """The config key an environment variable overrides (``CHATSTACK_LIMITS__BURST`` ->
    ``limits.burst``), or None when ``name`` names no key (e.g. a test harness switch)."""
    if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
        return None
    key = _env_key(name)
    return key if key in _FIELDS else None


def _collect(
    path: Path | None, environ: Mapping[str, str], overrides: Mapping[str, tuple[str, str]]
) -> tuple[dict[str, tuple[Any, bool, str]], str]:
    """Raw values by key: (value, from_env, source)."""
    raw: dict[str, tuple[Any, bool, str]] = {}
    source = ""
    if path is not None:
        source = str(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("--config", str(path), "an existing file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError("--config", str(path), f"a readable file ({exc})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("--config", str(path), f"a valid TOML file ({exc})") from None
        for key, value in _flatten(data, source).items():
            _check_key(key, value, source)
            raw[key] = (value, False, source)
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        key = _env_key(name)
        _check_key(key, value, name)
        raw[key] = (value, True, name)
    for key, (value, where) in overrides.items():
        _check_key(key, value, where)
        raw[key] = (value, True, where)
    return raw, source


def _resolve(path_text: str, base: Path | None) -> Path | None:
    if not path_text:
        return None
    path = Path(path_text)
    if path.is_absolute() or base is None:
        return path
    return base / path


def _read_secret(key: str, path: Path | None) -> str:
    if path is None:
        raise ConfigError(key, "", "a file holding the broker password (required)")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(key, str(path), f"a readable file ({exc.strerror})") from None
    secret = text.rstrip("\r\n")
    if not secret:
        raise ConfigError(key, str(path), "a file holding a non-empty password")
    return secret


def _readable_file(key: str, path: Path | None, what: str) -> Path:
    if path is None:
        raise ConfigError(key, "", f"{what} (required)")
    if not path.is_file() or not os.access(path, os.R_OK):
        raise ConfigError(key, str(path), f"a readable file ({what})")
    return path


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_config(
    role: str,
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, tuple[str, str]] | None = None,
) -> Config:
    """Load, override and check the configuration of ``role`` (gateway, history or serve).

    Precedence: defaults < file < environment < ``overrides`` (key -> (text, where), e.g.
    command-line flags), each parsed and checked the same way.
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    env = dict(os.environ if environ is None else environ)
    if path is None and env.get(CONFIG_ENV):
        path = env[CONFIG_ENV]
    config_path = Path(path) if path is not None else None
    raw, source = _collect(config_path, env, overrides or {})

    values: dict[str, Any] = {}
    for key, spec in _FIELDS.items():
        if key in raw:
            value, from_env, origin = raw[key]
            try:
                values[key] = spec.parse(value, from_env)
            except _Invalid as exc:
                raise ConfigError(key, value, str(exc), origin) from None
        else:
            values[key] = spec.default(role)

    def where(key: str) -> str:
        return raw[key][2] if key in raw else "default"

    def given(key: str) -> Any:
        """The value as the user wrote it, for error messages."""
        return raw[key][0] if key in raw else values[key]

    config_dir = config_path.parent if config_path is not None else Path.cwd()
    credentials = env.get("CREDENTIALS_DIRECTORY")
    secret_base = Path(credentials) if credentials else config_dir
    state = env.get("STATE_DIRECTORY")
    # systemd passes several state directories colon-separated; ours is the first.
    state_base = Path(state.split(":")[0]) if state else Path.cwd()

    kind = values["broker.kind"]
    if role == "serve" and kind != "memory":
        raise ConfigError(
            "broker.kind",
            kind,
            "'memory' for chatstack serve (run chat-gateway and chat-history for RabbitMQ)",
            where("broker.kind"),
        )
    if role != "serve" and kind != "rabbitmq":
        raise ConfigError(
            "broker.kind",
            kind,
            "'rabbitmq' (the in-memory broker only exists inside chatstack serve)",
            where("broker.kind"),
        )

    tls = values["broker.tls"]
    port = values["broker.port"] or contract.port("amqps" if tls else "amqp")
    password = ""
    ca_file = cert_file = key_file = None
    if kind == "rabbitmq":
        password = _read_secret(
            "broker.password_file", _resolve(values["broker.password_file"], secret_base)
        )
        if tls:
            ca_file = _readable_file(
                "broker.ca_file",
                _resolve(values["broker.ca_file"], secret_base),
                "the CA certificate that signed the broker's certificate",
            )
            cert_path = _resolve(values["broker.cert_file"], secret_base)
            key_path = _resolve(values["broker.key_file"], secret_base)
            if (cert_path is None) != (key_path is None):
                raise ConfigError(
                    "broker.cert_file" if cert_path is None else "broker.key_file",
                    "",
                    "cert_file and key_file set together or not at all",
                )
            if cert_path is not None:
                cert_file = _readable_file("broker.cert_file", cert_path, "client certificate")
                key_file = _readable_file("broker.key_file", key_path, "client key")
        elif not _is_loopback(values["broker.host"]):
            raise ConfigError(
                "broker.tls",
                False,
                "true (plaintext AMQP is only allowed to a loopback broker.host)",
                where("broker.tls"),
            )

    if values["gateway.ping_timeout_s"] > values["gateway.ping_interval_s"]:
        # A pong is awaited at most until the next ping is due (gateway/keepalive.py).
        raise ConfigError(
            "gateway.ping_timeout_s",
            given("gateway.ping_timeout_s"),
            f"at most gateway.ping_interval_s ({values['gateway.ping_interval_s']})",
            where("gateway.ping_timeout_s"),
        )
    if values["broker.reconnect_max_s"] < values["broker.reconnect_initial_s"]:
        raise ConfigError(
            "broker.reconnect_max_s",
            given("broker.reconnect_max_s"),
            "at least broker.reconnect_initial_s",
            where("broker.reconnect_max_s"),
        )

    instance = values["instance"] or f"{socket.gethostname()}-{role}-{values['http.port']}"
    static_dir = _resolve(values["http.static_dir"], config_dir)
    if static_dir is not None and not static_dir.is_dir():
        raise ConfigError(
            "http.static_dir", str(static_dir), "an existing directory", where("http.static_dir")
        )
    database = Path(values["history.database"])
    if not database.is_absolute():
        database = state_base / database

    return Config(
        role=role,
        instance=instance,
        http=HttpConfig(
            host=values["http.host"],
            port=values["http.port"],
            xheaders=values["http.xheaders"],
            shutdown_timeout_s=values["http.shutdown_timeout_s"],
            static_dir=static_dir,
            max_connections=values["http.max_connections"],
            header_timeout_s=values["http.header_timeout_s"],
            allowed_hosts=values["http.allowed_hosts"],
        ),
        gateway=GatewayConfig(
            allowed_origins=values["gateway.allowed_origins"],
            ping_interval_s=values["gateway.ping_interval_s"],
            ping_timeout_s=values["gateway.ping_timeout_s"],
            idempotency_ttl_s=values["gateway.idempotency_ttl_s"],
            max_connections_per_address=values["gateway.max_connections_per_address"],
            presence_coalesce_ms=values["gateway.presence_coalesce_ms"],
            failover_after_s=values["gateway.failover_after_s"],
            members_lease_s=values["gateway.members_lease_s"],
        ),
        limits=Limits(
            max_text_bytes=values["limits.max_text_bytes"],
            max_rooms=values["limits.max_rooms"],
            rate_per_s=values["limits.rate_per_s"],
            burst=values["limits.burst"],
            max_errors=values["limits.max_errors"],
            abuse_window_s=values["limits.abuse_window_s"],
            max_frame_bytes=values["limits.max_frame_bytes"],
            join_rate_per_s=values["limits.join_rate_per_s"],
            join_burst=values["limits.join_burst"],
            max_unsent_bytes=values["limits.max_unsent_bytes"],
            max_unsent_frames=values["limits.max_unsent_frames"],
            send_buffer_bytes=values["limits.send_buffer_bytes"],
        ),
        broker=BrokerConfig(
            kind=kind,
            host=values["broker.host"],
            port=port,
            vhost=values["broker.vhost"],
            user=values["broker.user"],
            password=password,
            tls=tls,
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
            server_name=values["broker.server_name"] or values["broker.host"],
            heartbeat_s=values["broker.heartbeat_s"],
            blocked_connection_timeout_s=values["broker.blocked_connection_timeout_s"],
            reconnect_initial_s=values["broker.reconnect_initial_s"],
            reconnect_max_s=values["broker.reconnect_max_s"],
            publish_timeout_s=values["broker.publish_timeout_s"],
        ),
        history_database=database,
        statsd=StatsdConfig(
            host=values["statsd.host"], port=values["statsd.port"], prefix=values["statsd.prefix"]
        ),
        log_level=values["log.level"],
        event_loop=values["process.event_loop"],
        source=source,
    )
