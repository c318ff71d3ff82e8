"""docker-compose.yml, haproxy.cfg and the Dockerfile, checked without a container engine:
the Compose schema, `haproxy -c` with the values of both callers, hadolint, and what the
file promises (docs/demo.md, "Try it with Docker"): the containers run the scripts that
scripts/demo runs, every service has a health check, the bridges are configured with real
configuration keys only, and nothing needs rabbitmq1 once the cluster exists."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from bridge import config as config_mod

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
HAPROXY_CFG = ROOT / "haproxy.cfg"
BIN = Path(sys.executable).parent  # check-jsonschema and hadolint come with the dev extras
TIMEOUT = 120

# the scripts both scripts/demo (here) and the containers run
SHARED_SCRIPTS = ("scripts/site-setup", "scripts/legacy-writer", "scripts/site-user")


def compose() -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe", pure=True).load(COMPOSE.read_text())
    return data


def services() -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose()["services"]
    return result


# ${VAR}, ${VAR:-default}, not $${...} (an escaped $ for the container's shell)
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(:?-([^}]*))?\}")


def interpolate(value: str) -> str:
    """Compose's interpolation with neither .env nor variables set: the defaults."""
    return VARIABLE.sub(lambda m: m.group(3) or "", value).replace("$$", "$")


def words(value: Any) -> str:
    """A command, entrypoint or volume list as one string."""
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def tool(name: str) -> str:
    path = BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    assert found, f"{name} not found next to {sys.executable} nor on PATH: pip install -e '.[dev]'"
    return found


def haproxy() -> str:
    found = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
    )
    assert found, (
        "haproxy is not installed: scripts/services (or scripts/cluster start) installs it"
    )
    return found


def run(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


# ------------------------------------------------------------------------- schema, linters


def test_compose_file_passes_the_compose_schema():
    done = run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)])
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_passes_hadolint():
    done = run([tool("hadolint"), "--no-color", "Dockerfile"])
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_is_pinned_unprivileged_and_checks_its_health():
    text = (ROOT / "Dockerfile").read_text()
    bases = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", bases[0]), bases
    assert "HEALTHCHECK" in text
    # each stage that ends up as an image switches to the numeric non-root user at its end
    stages = re.split(r"^FROM\s", text, flags=re.M)[1:]
    for stage in stages[1:]:
        users = re.findall(r"^USER\s+(\S+)", stage, re.M)
        assert users and users[-1] != "root" and not users[-1].startswith("0"), stage[:60]
    assert "--no-cache-dir" in text
    # every hadolint exception says why, on the lines around it
    for m in re.finditer(r"# hadolint ignore=([A-Z0-9,]+)", text):
        for rule in m.group(1).split(","):
            assert f"({rule}:" in text, f"hadolint ignore={rule} without its reason '({rule}: ...)'"


def test_dockerignore_keeps_secrets_out_and_the_shared_scripts_in():
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "allow-list: everything is ignored unless named"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert not any(a.startswith(".env") for a in allowed)
    copied = re.findall(
        r"^COPY\s+(?:--\S+\s+)*(.+)\s+\S+$", (ROOT / "Dockerfile").read_text(), re.M
    )
    for sources in copied:
        for source in sources.split():
            assert source in allowed, f"the Dockerfile copies {source}, which .dockerignore drops"


# ------------------------------------------------------------------------------- haproxy


def haproxy_variables() -> set[str]:
    text = "\n".join(
        line for line in HAPROXY_CFG.read_text().splitlines() if not line.lstrip().startswith("#")
    )
    return set(re.findall(r"\$\{([A-Z0-9_]+)\}", text))


def scripts_cluster_haproxy_env() -> dict[str, str]:
    """The environment scripts/cluster gives haproxy: its own haproxy_env function, run."""
    text = (ROOT / "scripts" / "cluster").read_text()
    constants = "\n".join(
        line for line in text.splitlines() if re.match(r"^readonly [A-Z_]+=[0-9.\"]", line)
    )
    functions = [
        re.search(r"^node_port\(\) \{[^\n]*\}$", text, re.M),
        re.search(r"^haproxy_env\(\) \{\n.*?^\}$", text, re.M | re.S),
    ]
    assert all(functions), "scripts/cluster has no node_port or haproxy_env function"
    script = "\n".join(
        [
            constants,
            "CLUSTER_DIR=/nonexistent",
            *(f.group(0) for f in functions if f),
            "haproxy_env env",
        ]
    )
    done = subprocess.run(
        ["bash", "-c", script],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


def test_haproxy_cfg_is_valid_with_the_compose_environment():
    env = {k: interpolate(str(v)) for k, v in services()["haproxy"]["environment"].items()}
    assert haproxy_variables() <= set(env), "haproxy.cfg variables the compose file does not set"
    done = run([haproxy(), "-c", "-f", str(HAPROXY_CFG)], env={"PATH": os.environ["PATH"], **env})
    assert done.returncode == 0, done.stdout + done.stderr
    # the published ports are the ones haproxy.cfg binds: AMQP, management, stats; not
    # the AMQPS frontend, whose compose nodes have no TLS listener (haproxy.cfg says so:
    # TLS is tried on the local cluster of scripts/cluster)
    published = {p.rsplit(":", 1)[-1] for p in services()["haproxy"]["ports"]}
    binds = {env[k].rsplit(":", 1)[-1] for k in env if k.endswith("_BIND")}
    assert published == binds - {"5671"} == {"5672", "15672", "1936"}
    assert env["BRIDGE_HAPROXY_TLS_BIND"].endswith(":5671")


def test_haproxy_cfg_is_valid_with_the_scripts_cluster_environment():
    env = scripts_cluster_haproxy_env()
    # every address but Docker's DNS (unused with IP addresses) is set to a local one:
    # a variable left to its compose default would bind 0.0.0.0 on this machine
    missing = haproxy_variables() - set(env) - {"BRIDGE_HAPROXY_DNS"}
    assert missing == set(), f"scripts/cluster leaves {missing} to the docker defaults"
    assert all(
        env[k].startswith("127.0.0.1:") for k in haproxy_variables() - {"BRIDGE_HAPROXY_DNS"}
    )
    done = run([haproxy(), "-c", "-f", str(HAPROXY_CFG)], env={"PATH": os.environ["PATH"], **env})
    assert done.returncode == 0, done.stdout + done.stderr


# ----------------------------------------------------------------- one script, two callers


def test_scripts_demo_and_scripts_cluster_call_the_shared_scripts():
    demo = (ROOT / "scripts" / "demo").read_text()
    assert '"$REPO_DIR/scripts/site-setup"' in demo
    assert '"$REPO_DIR/scripts/legacy-writer"' in demo
    assert "scripts/cluster add-site-user" in demo
    assert '"$REPO_DIR/scripts/site-user"' in (ROOT / "scripts" / "cluster").read_text()
    for script in SHARED_SCRIPTS:
        assert os.access(ROOT / script, os.X_OK), f"{script} is not executable"


@pytest.mark.parametrize(
    ("prefix", "script"),
    [
        ("setup-", "scripts/site-setup"),
        ("legacy-", "scripts/legacy-writer"),
        ("broker-setup", "scripts/site-user"),
    ],
)
def test_compose_services_run_the_scripts_scripts_demo_runs(prefix, script):
    chosen = {n: s for n, s in services().items() if n.startswith(prefix)}
    assert chosen, f"no service named {prefix}*"
    for name, service in chosen.items():
        ran = words(service.get("entrypoint")) + " " + words(service.get("command"))
        assert script in ran, f"{name} does not run {script}: {ran}"
        if script == "scripts/site-user":  # the RabbitMQ image: mounted from the repo
            assert any(v.startswith(f"./{script}:") for v in service["volumes"]), name
        else:  # the bridge image: copied in at the same path, run from /app
            assert service["image"].startswith("bridge:") and "build" in service, name


def test_the_images_copy_the_scripts_the_services_run():
    text = (ROOT / "Dockerfile").read_text()
    copy = re.search(r"^COPY (.+) /app/scripts/$", text, re.M)
    assert copy is not None and set(copy.group(1).split()) == {
        "scripts/site-setup",
        "scripts/legacy-writer",
    }
    assert re.search(r"^WORKDIR /app$", text, re.M)


# ------------------------------------------------------------------------ health, config


def test_every_service_has_a_health_check_or_is_one_shot():
    for name, service in services().items():
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        if check.get("disable"):
            # only a one-shot service may go without: it exits, and others wait for that
            assert service.get("restart") == "no", f"{name} disables its health check"
            dependants = [
                n
                for n, s in services().items()
                if (s.get("depends_on") or {}).get(name, {}).get("condition")
                == "service_completed_successfully"
            ]
            assert dependants, f"one-shot {name}: nothing waits for it to complete"
        else:
            assert check["test"][0] in ("CMD", "CMD-SHELL") and len(check["test"]) > 1, name


def bridge_services() -> dict[str, dict[str, Any]]:
    """The services that run bridge with a site's configuration: bridge run and setup."""
    return {
        n: s
        for n, s in services().items()
        if words(s.get("command")).startswith(("bridge run", "python scripts/site-setup"))
    }


def test_bridge_services_are_configured_with_real_configuration_keys_only():
    known = set(config_mod.Config.__dataclass_fields__)
    found = bridge_services()
    assert {n.split("-", 1)[0] for n in found} == {"bridge", "setup"}
    sites = set()
    for name, service in found.items():
        env = {k: interpolate(str(v)) for k, v in service["environment"].items()}
        unknown = [k for k in env if not k.startswith("BRIDGE_") or k[7:].lower() not in known]
        assert unknown == [], f"{name}: not configuration keys: {unknown}"
        cfg = config_mod.load(env=env, dotenv=None)  # a valid configuration, tables included
        assert name.endswith("-" + cfg.site.lower())
        sites.add(cfg.site)
    assert {"PARIS", "LONDON", "MADRID", "ROME", "OSLO"} == sites


def test_each_bridge_waits_for_its_own_setup():
    for name, service in services().items():
        if words(service.get("command")) != "bridge run":
            continue
        site = name.removeprefix("bridge-")
        assert service["depends_on"][f"setup-{site}"]["condition"] == (
            "service_completed_successfully"
        )
        assert service["environment"] == services()[f"setup-{site}"]["environment"]
        writer = services()[f"legacy-{site}"]
        assert writer["depends_on"][f"setup-{site}"]["condition"] == (
            "service_completed_successfully"
        ), "a write before install-triggers would never be captured"


def test_compose_variables_are_in_env_sample():
    sample = (ROOT / ".env.sample").read_text()
    names = {m.group(1) for m in VARIABLE.finditer(COMPOSE.read_text())}
    missing = sorted(n for n in names if not re.search(rf"^#? ?{n}=", sample, re.M))
    assert missing == [], f".env.sample does not mention {missing}"


# ------------------------------------------------------------------ without rabbitmq1


def test_nothing_requires_rabbitmq1():
    for name, service in services().items():
        dep = (service.get("depends_on") or {}).get("rabbitmq1")
        if dep is None:
            continue
        assert name in ("rabbitmq2", "rabbitmq3"), f"{name} depends on rabbitmq1"
        assert dep.get("required") is False, f"{name} requires rabbitmq1"


def test_scaled_without_rabbitmq1_every_required_dependency_is_there():
    """`--scale rabbitmq1=0`: the services that still run need only services that run."""
    present = {n for n, s in services().items() if "profiles" not in s} - {"rabbitmq1"}
    for name in present:
        for dep, how in (services()[name].get("depends_on") or {}).items():
            if how.get("required", True):
                assert dep in present, f"{name} requires {dep}"
    # the admin commands and the AMQP / management traffic do not go to node 1 alone
    broker_setup = services()["broker-setup"]["environment"]["RABBITMQ_NODE"].split()
    assert {"rabbit@rabbitmq2", "rabbit@rabbitmq3"} <= set(broker_setup)
    for name in bridge_services():
        env = services()[name]["environment"]
        assert "@haproxy:5672/" in env["BRIDGE_AMQP_URL"], name


def test_each_bridge_health_check_asks_its_own_healthz():
    """`bridge run` serves /healthz on BRIDGE_METRICS_ADDRESS: the health check asks that
    port, so a bridge whose parts died is unhealthy, not only a stopped container."""
    checked = 0
    for name, service in services().items():
        if words(service.get("command")) != "bridge run":
            continue
        address = interpolate(str(service["environment"]["BRIDGE_METRICS_ADDRESS"]))
        port = address.rsplit(":", 1)[1]
        test = " ".join(service["healthcheck"]["test"])
        assert f"http://127.0.0.1:{port}/healthz" in test, name
        checked += 1
    assert checked == 5
