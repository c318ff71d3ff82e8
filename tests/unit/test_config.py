import pytest

from bridge import config
from bridge.errors import ConfigError

pytestmark = pytest.mark.unit

BASE = {
    "site": "paris",
    "database_url": "postgresql://127.0.0.1/paris",
    "amqp_url": "amqp://paris:x@127.0.0.1:5680/",
    "sites": ["PARIS", "LONDON"],
    "tables": {"orders": "lww", "customers": {"policy": "none"}},
}


def test_valid_mapping():
    cfg = config.from_mapping(BASE)
    assert cfg.site == "PARIS"
    assert cfg.queue == "SITE_PARIS"
    assert cfg.archive_queue == "SITE_PARIS_HISTO"
    assert cfg.is_archive
    assert cfg.retention_days == 90
    assert [(t.name, t.policy) for t in cfg.tables] == [("orders", "lww"), ("customers", "none")]


@pytest.mark.parametrize("key", ["site", "database_url", "amqp_url", "sites", "tables"])
def test_missing_key_is_named(key):
    raw = {k: v for k, v in BASE.items() if k != key}
    with pytest.raises(ConfigError, match=f"missing configuration key '{key}'.*BRIDGE_"):
        config.from_mapping(raw)


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"site": "ROME"}, "not in 'sites'"),
        ({"archive_site": "ROME"}, "archive_site"),
        ({"site": "pa ris"}, "not a valid site name"),
        ({"batch_size": "many"}, "'batch_size' must be a int"),
        ({"retention_days": 0}, "'retention_days' must be >= 1"),
        ({"tables": {"orders": "newest"}}, "unknown conflict policy 'newest'"),
        ({"colour": "blue"}, "unknown configuration key"),
        ({"peers": "LONDON"}, "NAME=database_url"),
    ],
)
def test_wrong_values_are_explained(over, message):
    with pytest.raises(ConfigError, match=message):
        config.from_mapping({**BASE, **over})


def test_file_then_dotenv_then_environment(tmp_path):
    toml = tmp_path / "bridge.toml"
    toml.write_text(
        'site = "PARIS"\ndatabase_url = "postgresql://127.0.0.1/paris"\n'
        'amqp_url = "amqp://a@h/"\nsites = ["PARIS", "LONDON"]\nbatch_size = 10\n'
        '[tables]\norders = "lww"\n'
    )
    dotenv = tmp_path / ".env"
    dotenv.write_text("# comment\nBRIDGE_BATCH_SIZE=20\nexport BRIDGE_POLL_INTERVAL='2.5'\n")
    cfg = config.load(toml, env={"BRIDGE_TABLES": "orders,customers:manual"}, dotenv=dotenv)
    assert cfg.batch_size == 20
    assert cfg.poll_interval == 2.5
    assert [(t.name, t.policy) for t in cfg.tables] == [("orders", "lww"), ("customers", "manual")]
    cfg = config.load(toml, env={"BRIDGE_BATCH_SIZE": "30"}, dotenv=dotenv)
    assert cfg.batch_size == 30


def test_missing_file_says_what_to_write(tmp_path):
    with pytest.raises(ConfigError, match="(?s)does not exist.*site = "):
        config.load(tmp_path / "nope.toml", env={}, dotenv=None)


def test_environment_only(tmp_path):
    env = {
        "BRIDGE_SITE": "LONDON",
        "BRIDGE_DATABASE_URL": "postgresql://127.0.0.1/london",
        "BRIDGE_AMQP_URL": "amqp://a@h1/,amqp://a@h2/",
        "BRIDGE_SITES": "PARIS,LONDON",
        "BRIDGE_TABLES": "orders",
        "BRIDGE_PEERS": "PARIS=postgresql://127.0.0.1/paris",
        "BRIDGE_CLUSTER_DIR": "/var/tmp/x",  # a script's variable, not a config key
    }
    cfg = config.load(None, env=env, dotenv=tmp_path / "none")
    assert cfg.amqp_urls == ["amqp://a@h1/", "amqp://a@h2/"]
    assert not cfg.is_archive
    assert cfg.peers == {"PARIS": "postgresql://127.0.0.1/paris"}


def test_tables_may_be_missing_for_commands_that_name_their_own():
    raw = {k: v for k, v in BASE.items() if k != "tables"}
    assert config.from_mapping(raw, require_tables=False).tables == ()
    assert config.from_mapping({**raw, "tables": ""}, require_tables=False).tables == ()
    listed = config.from_mapping(BASE, require_tables=False)
    assert [t.name for t in listed.tables] == ["orders", "customers"]
    with pytest.raises(ConfigError, match="missing configuration key 'tables'"):
        config.from_mapping(raw)


def test_an_unquoted_schema_qualified_table_in_toml_is_refused_with_the_fix(tmp_path):
    toml = tmp_path / "bridge.toml"
    toml.write_text(
        'site = "PARIS"\ndatabase_url = "postgresql://127.0.0.1/paris"\n'
        'amqp_url = "amqp://a@h/"\nsites = ["PARIS"]\n[tables]\nsales.orders = "lww"\n'
    )
    with pytest.raises(ConfigError, match='must be quoted in TOML: "sales.orders" = "lww"'):
        config.load(toml, env={}, dotenv=None)
    toml.write_text(toml.read_text().replace("sales.orders", '"sales.orders"'))
    cfg = config.load(toml, env={}, dotenv=None)
    assert [t.name for t in cfg.tables] == ["sales.orders"]


def test_acks_mode():
    assert config.from_mapping(BASE).acks == "direct"
    assert config.from_mapping({**BASE, "acks": "Topic"}).acks == "topic"
    assert config.from_mapping({**BASE, "acks": "off"}).acks == "off"
    with pytest.raises(ConfigError, match="'acks': 'fanout' is not an acknowledgement mode"):
        config.from_mapping({**BASE, "acks": "fanout"})
