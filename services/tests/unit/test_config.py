import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatstack import capacity, contract
from chatstack.config import ConfigError, load_config
from chatstack.devstack.services import script


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    (tmp_path / "amqp-password").write_text("s3cret\n")
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    return tmp_path


def rabbit_env(secrets_dir: Path) -> dict[str, str]:
    return {
        "CHATSTACK_BROKER__PASSWORD_FILE": str(secrets_dir / "amqp-password"),
        "CHATSTACK_BROKER__CA_FILE": str(secrets_dir / "ca.pem"),
    }


def test_defaults_come_from_the_contract() -> None:
    serve = load_config("serve", environ={})
    assert serve.http.port == contract.port("embedded")
    assert serve.http.host == "127.0.0.1"
    assert serve.broker.kind == "memory"
    assert serve.limits.max_rooms == contract.section("limits")["max_rooms"]
    assert not serve.statsd.enabled


def test_role_defaults(secrets_dir: Path) -> None:
    gateway = load_config("gateway", environ=rabbit_env(secrets_dir))
    assert gateway.http.port == contract.port("gateway")
    assert gateway.broker.user == contract.amqp("users")["gateway"]["name"]
    assert gateway.broker.port == contract.port("amqps")
    assert gateway.broker.password == "s3cret"  # trailing newline dropped
    history = load_config("history", environ=rabbit_env(secrets_dir))
    assert history.http.port == contract.port("history")
    assert history.broker.user == contract.amqp("users")["history"]["name"]


def test_file_then_environment(tmp_path: Path, secrets_dir: Path) -> None:
    path = write(
        tmp_path / "gw.toml",
        'instance = "gw-7"\n[http]\nport = 9000\nxheaders = true\n'
        '[gateway]\nallowed_origins = ["https://Chat.Example.com/"]\n'
        "[limits]\nburst = 3\n",
    )
    env = rabbit_env(secrets_dir) | {
        "CHATSTACK_HTTP__PORT": "9001",
        "CHATSTACK_LIMITS__RATE_PER_S": "2.5",
    }
    config = load_config("gateway", path, env)
    assert config.instance == "gw-7"
    assert config.http.port == 9001
    assert config.http.xheaders is True
    assert config.limits.burst == 3
    assert config.limits.rate_per_s == 2.5
    assert config.gateway.allowed_origins == ("https://chat.example.com",)
    assert config.source == str(path)


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path / "serve.toml", "[http]\nport = 9100\n")
    assert load_config("serve", environ={"CHATSTACK_CONFIG": str(path)}).http.port == 9100


def test_list_from_environment() -> None:
    env = {"CHATSTACK_GATEWAY__ALLOWED_ORIGINS": "https://a.example, http://b.example:8080"}
    config = load_config("serve", environ=env)
    assert config.gateway.allowed_origins == ("https://a.example", "http://b.example:8080")


def test_relative_secret_files_use_the_credentials_directory(secrets_dir: Path) -> None:
    env = {
        "CREDENTIALS_DIRECTORY": str(secrets_dir),
        "CHATSTACK_BROKER__PASSWORD_FILE": "amqp-password",
        "CHATSTACK_BROKER__CA_FILE": "ca.pem",
    }
    config = load_config("gateway", environ=env)
    assert config.broker.password == "s3cret"
    assert config.broker.ca_file == secrets_dir / "ca.pem"


def test_relative_database_uses_the_state_directory(tmp_path: Path) -> None:
    config = load_config("serve", environ={"STATE_DIRECTORY": str(tmp_path)})
    assert config.history_database == tmp_path / "history.sqlite3"


def error(role: str, path: Path | None = None, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(role, path, env or {})
    return info.value


@pytest.mark.parametrize(
    ("env", "key", "expected"),
    [
        ({"CHATSTACK_HTTP__PORT": "eighty"}, "http.port", "an integer between 1 and 65535"),
        ({"CHATSTACK_HTTP__PORT": "70000"}, "http.port", "an integer between 1 and 65535"),
        ({"CHATSTACK_LIMITS__RATE_PER_S": "-1"}, "limits.rate_per_s", "a number > 0"),
        ({"CHATSTACK_LIMITS__RATE_PER_S": "nan"}, "limits.rate_per_s", "a number > 0"),
        ({"CHATSTACK_HTTP__XHEADERS": "maybe"}, "http.xheaders", "true or false"),
        ({"CHATSTACK_LOG__LEVEL": "LOUD"}, "log.level", "one of"),
        ({"CHATSTACK_BROKER__KIND": "rabbitmq"}, "broker.kind", "'memory' for chatstack serve"),
        ({"CHATSTACK_HTTP__PROT": "1"}, "http.prot", "a known key"),
        ({"CHATSTACK_BROKER__PASSWORD": "x"}, "broker.password", "no secret as a value"),
        (
            {"CHATSTACK_GATEWAY__ALLOWED_ORIGINS": "chat.example.com"},
            "gateway.allowed_origins",
            "origins",
        ),
        ({"CHATSTACK_GATEWAY__PING_TIMEOUT_S": "99"}, "gateway.ping_timeout_s", "at most"),
        ({"CHATSTACK_HTTP__ALLOWED_HOSTS": "chat.example.com:8080"}, "http.allowed_hosts", "host"),
        ({"CHATSTACK_HTTP__ALLOWED_HOSTS": "[nope"}, "http.allowed_hosts", "host names"),
        ({"CHATSTACK_HTTP__MAX_CONNECTIONS": "0"}, "http.max_connections", "an integer >= 1"),
        ({"CHATSTACK_LIMITS__MAX_UNSENT_BYTES": "10"}, "limits.max_unsent_bytes", ">= 1024"),
    ],
)
def test_bad_values_name_key_value_and_expectation(
    env: dict[str, str], key: str, expected: str
) -> None:
    exc = error("serve", env=env)
    assert exc.key == key
    assert expected in exc.expected
    message = str(exc)
    assert message.startswith(f"{key} = ")
    assert "expected" in message
    if "PASSWORD" not in next(iter(env)):
        assert repr(next(iter(env.values()))) in message


def test_secret_value_is_never_echoed() -> None:
    exc = error("serve", env={"CHATSTACK_BROKER__PASSWORD": "hunter2"})
    assert "hunter2" not in str(exc)


def test_bad_file_errors(tmp_path: Path) -> None:
    assert error("serve", tmp_path / "missing.toml").expected == "an existing file"
    bad = write(tmp_path / "bad.toml", "[http\nport = 1")
    assert "valid TOML" in error("serve", bad).expected
    unknown = write(tmp_path / "unknown.toml", "[htp]\nport = 1\n")
    assert error("serve", unknown).key == "[htp]"
    typed = write(tmp_path / "typed.toml", '[http]\nport = "8080"\n')
    assert error("serve", typed).key == "http.port"  # a string in TOML is not an integer


def test_rabbitmq_needs_password_and_ca(secrets_dir: Path) -> None:
    assert error("gateway").key == "broker.password_file"
    only_password = {"CHATSTACK_BROKER__PASSWORD_FILE": str(secrets_dir / "amqp-password")}
    assert error("gateway", env=only_password).key == "broker.ca_file"
    empty = secrets_dir / "empty"
    empty.write_text("\n")
    exc = error("gateway", env={"CHATSTACK_BROKER__PASSWORD_FILE": str(empty)})
    assert "non-empty" in exc.expected


def test_plaintext_amqp_only_to_loopback(secrets_dir: Path) -> None:
    env = rabbit_env(secrets_dir) | {"CHATSTACK_BROKER__TLS": "false"}
    assert load_config("gateway", environ=env).broker.port == contract.port("amqp")
    exc = error("gateway", env=env | {"CHATSTACK_BROKER__HOST": "mq.example"})
    assert exc.key == "broker.tls"


def test_client_cert_and_key_together(secrets_dir: Path) -> None:
    env = rabbit_env(secrets_dir) | {"CHATSTACK_BROKER__CERT_FILE": str(secrets_dir / "ca.pem")}
    assert error("gateway", env=env).key == "broker.key_file"


def test_memory_broker_only_inside_serve(secrets_dir: Path) -> None:
    env = rabbit_env(secrets_dir) | {"CHATSTACK_BROKER__KIND": "memory"}
    assert error("gateway", env=env).key == "broker.kind"


INT_KEYS = [
    "HTTP__PORT",
    "LIMITS__MAX_ROOMS",
    "LIMITS__BURST",
    "STATSD__PORT",
    "BROKER__HEARTBEAT_S",
]


@given(st.sampled_from(INT_KEYS), st.text(max_size=12))
def test_any_environment_value_loads_or_gives_a_config_error(key: str, value: str) -> None:
    if "\x00" in value:
        return  # the environment cannot hold NUL
    try:
        load_config("serve", environ={f"CHATSTACK_{key}": value})
    except ConfigError as exc:
        assert exc.key == key.lower().replace("__", ".")


def run_cli(
    name: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CHATSTACK_")}
    return subprocess.run(
        [script(name), *args],
        capture_output=True,
        text=True,
        env=base | (env or {}),
        timeout=30,
    )


def test_a_bad_value_stops_the_process_with_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run_cli("chat-gateway", env={"CHATSTACK_HTTP__PORT": "eighty"})
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "chatstack: config error: http.port = 'eighty' (from CHATSTACK_HTTP__PORT):"
        " expected an integer between 1 and 65535"
    ]


def test_serve_flags_are_checked_like_config_values() -> None:
    result = run_cli("chatstack", "serve", "--port", "0x50")
    assert result.returncode == 2
    assert "http.port = '0x50' (from --port)" in result.stderr


def test_check_config(tmp_path: Path) -> None:
    good = write(tmp_path / "ok.toml", "[http]\nport = 9000\n")
    result = run_cli("chatstack", "check-config", "serve", "--config", str(good))
    assert result.returncode == 0, result.stderr
    assert "serve config OK" in result.stdout
    result = run_cli("chatstack", "check-config", "gateway", "--config", str(good))
    assert result.returncode == 2
    assert "broker.password_file" in result.stderr


def test_host_names_default_by_role_and_parse() -> None:
    assert load_config("serve", environ={}).http.allowed_hosts == ()
    # The default cap: a gateway's websockets (the contract's capacity target) plus headroom.
    connections = contract.section("connections")
    cap = load_config("serve", environ={}).http.max_connections
    assert cap == capacity.max_connections(connections) > connections["websockets_per_gateway"]
    env = {"CHATSTACK_HTTP__ALLOWED_HOSTS": '["Chat.Example.com.", "lan"]'}
    assert load_config("serve", environ=env).http.allowed_hosts == ("chat.example.com", "lan")
    any_host = {"CHATSTACK_HTTP__ALLOWED_HOSTS": "*"}
    assert load_config("serve", environ=any_host).http.allowed_hosts is None
