"""The files people run the system with are valid: docker-compose, Procfile, .env.example, the docs' links."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import prometheus_client
import yaml

from fcfs.settings import Settings
from tests.support import ROOT

SECRETS = {"ADMIN_TOKEN": "t0ken", "REQUEST_ID_SECRET": "s3cret", "DB_PASSWORD": "pa55"}


def compose_config(*files: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    compose = shutil.which("docker-compose")
    assert compose, "docker-compose is needed to check docker-compose.yml (Debian package docker-compose)"
    args = [compose, "--project-directory", str(ROOT / "tests"), *(a for f in files for a in ("-f", str(ROOT / f)))]
    base = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run([*args, "config"], capture_output=True, text=True, timeout=60, env={**base, **(env or {})})


def test_docker_compose_file_is_valid_and_runs_in_production_exposing_only_the_api() -> None:
    result = compose_config("docker-compose.yml", env=SECRETS)
    assert result.returncode == 0, result.stderr
    for service in ("mysql", "kafka", "kafka-ui", "api", "ops", "worker", "scheduler", "dashboard"):
        assert f"  {service}:" in result.stdout
    config = yaml.safe_load(result.stdout)["services"]
    apps = ("api", "ops", "worker", "scheduler", "dashboard")
    assert all(config[s]["environment"]["APP_ENV"] == "production" for s in apps)
    assert config["api"]["command"][-4:] == ["--plane", "public", "--nice", "10"]  # below the operators' plane
    assert config["ops"]["command"][-2:] == ["--plane", "ops"]
    assert config["dashboard"]["environment"]["API_BASE_URL"] == "http://ops:8001"  # not through the crowd's door
    assert config["ops"]["environment"]["CROWD_TARGET_URL"] == "http://api:8000"
    assert config["ops"]["environment"]["APP_ENV"] == "production"  # the shared settings kept
    assert config["api"]["environment"]["ADMIN_TOKEN"] == "t0ken"
    assert config["kafka-ui"]["environment"]["KAFKA_CLUSTERS_0_READONLY"] == "true"
    assert "MYSQL_ROOT_PASSWORD" not in config["mysql"]["environment"]
    for name, service in config.items():
        for port in service.get("ports", []):
            published = port if isinstance(port, dict) else {"host_ip": str(port).rsplit(":", 2)[0]}
            assert name == "api" or published.get("host_ip") == "127.0.0.1", (name, port)


def test_docker_compose_refuses_to_start_without_its_secrets() -> None:
    for missing in SECRETS:
        result = compose_config("docker-compose.yml", env={k: v for k, v in SECRETS.items() if k != missing})
        assert result.returncode != 0 and f"set {missing}" in result.stderr, (missing, result.stderr)


def test_env_example_names_every_setting() -> None:
    names = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    wanted = {field.upper() for field in Settings.model_fields}
    assert wanted <= names, wanted - names


def test_procfile_runs_every_process() -> None:
    processes = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    assert "python -m backend" in processes["api"]
    assert "python -m backend --plane ops" in processes["ops"] and "--nice 0" in processes["ops"]  # not API_NICE
    assert "python -m worker" in processes["worker"]
    assert "python -m batch.scheduler" in processes["scheduler"]
    assert "python -m batch.releaser" in processes["releaser"]
    assert "python -m batch.alerter" in processes["alerter"]
    assert "streamlit run dashboard/app.py" in processes["dashboard"]


def test_cluster_override_gives_three_brokers_and_replication() -> None:
    result = compose_config("docker-compose.yml", "docker-compose.cluster.yml", env=SECRETS)
    assert result.returncode == 0, result.stderr
    for needle in (
        "  kafka-2:",
        "  kafka-3:",
        "KAFKA_BOOTSTRAP_SERVERS: kafka:9092,kafka-2:9092,kafka-3:9092",
        "KAFKA_MIN_INSYNC_REPLICAS:",
        "1@kafka:9093,2@kafka-2:9093,3@kafka-3:9093",
    ):
        assert needle in result.stdout, needle


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", markdown, flags=re.S), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_link_of_the_readme_and_the_docs_leads_somewhere() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    linked: set[Path] = set()
    for page in pages:
        text = page.read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", re.sub(r"```.*?```", "", text, flags=re.S)):
            if re.match(r"[a-z]+://", target):
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            assert file.exists(), f"{page.name}: {target} leads nowhere"
            linked.add(file)
            if anchor:
                assert anchor in anchors(file.read_text()), f"{page.name}: no heading #{anchor} in {file.name}"
    # every page of docs/ is reachable from the README
    from_readme = {
        (ROOT / "docs" / p).resolve() for p in re.findall(r"\]\(docs/([^)#]+)", (ROOT / "README.md").read_text())
    }
    assert {p.resolve() for p in pages[1:]} <= from_readme
    assert linked


def test_the_prometheus_rules_name_metrics_this_system_exports() -> None:
    """Each rule has an expression, labels and a summary, and every fcfs_ metric it reads is one the API or a
    worker registers (a renamed metric would leave the rule silent)."""
    rules = yaml.safe_load((ROOT / "stack" / "prometheus" / "alerts.yml").read_text())["groups"][0]["rules"]
    names = {r["alert"] for r in rules}
    assert names == {
        "FcfsLagStalled",
        "FcfsWorkerLost",
        "FcfsDeadLettersGrowing",
        "FcfsDoorUnavailable",
        "FcfsDatabaseUnavailable",
    }
    import backend.app.observability
    import worker.metrics

    exported = {m.name for m in prometheus_client.REGISTRY.collect()}
    assert {backend.app.observability.__name__, worker.metrics.__name__}
    for rule in rules:
        assert rule["expr"] and rule["labels"]["severity"] and rule["annotations"]["summary"], rule
        for metric in re.findall(r"fcfs_[a-z_]+", rule["expr"]):
            assert re.sub(r"_(total|count|sum|bucket)$", "", metric) in exported, metric
