"""compose.yaml, checked statically (no Docker daemon here), like ``docker compose config``
plus the wiring a typo would break: every service builds from files that exist, the router's
policy is the one the image ships and its local tier is the llama service on the port that
service listens on, the decision-log URL names the postgres service and its credentials,
and the data volume is where the image writes."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from test_container_layout import dockerfile

from router_service.policy import load_policy

REPO = Path(__file__).resolve().parents[1]


def compose() -> dict:
    return yaml.safe_load((REPO / "compose.yaml").read_text(encoding="utf-8"))


def test_services_build_from_files_that_exist() -> None:
    services = compose()["services"]
    assert set(services) == {"router", "llama", "postgres", "mlflow"}
    assert services["router"]["build"] == "." and (REPO / "Dockerfile").is_file()
    llama = services["llama"]["build"]
    llama_file = REPO / llama["context"] / llama["dockerfile"]
    for line in llama_file.read_text(encoding="utf-8").splitlines():
        if line.startswith("COPY "):
            assert (REPO / line.split()[1]).exists(), line


def test_router_wiring() -> None:
    c = compose()
    router = c["services"]["router"]
    env = router["environment"]
    image_env, _, copies = dockerfile()
    # the policy is one the image copies to /app/policies, and it is valid
    assert (["policies"], "policies") in copies
    policy_path = REPO / env["ROUTER_POLICY"].removeprefix("/app/")
    policy = load_policy(policy_path)
    local = urlsplit(policy.tiers["local"].backends[0].base_url)
    llama_cmd = " ".join(
        yaml.safe_load((REPO / "docker/llama.Dockerfile").read_text().split("\nCMD ", 1)[1])
    )
    assert local.hostname == "llama" and f"--port {local.port}" in llama_cmd
    assert str(local.port) in c["services"]["llama"]["expose"]
    # the decision log is the postgres service, with its credentials
    db = urlsplit(env["ROUTER_DATABASE_URL"])
    pg = c["services"]["postgres"]["environment"]
    assert (db.hostname, db.username, db.password, db.path.lstrip("/")) == (
        "postgres",
        pg["POSTGRES_USER"],
        pg["POSTGRES_PASSWORD"],
        pg["POSTGRES_DB"],
    )
    assert router["depends_on"]["postgres"]["condition"] == "service_healthy"
    # writes go to the volume mounted where the image's ROUTER_DATA_DIR points
    mounts = {v.split(":", 1)[1] for v in router["volumes"]}
    assert image_env["ROUTER_DATA_DIR"] in mounts and router["read_only"] is True
    assert urlsplit(env["MLFLOW_TRACKING_URI"]).hostname == "mlflow"


def test_interpolated_variables_have_defaults() -> None:
    text = (REPO / "compose.yaml").read_text(encoding="utf-8")
    for var in re.findall(r"\$\{([^}]*)\}", text):
        assert ":-" in var, f"${{{var}}} has no default: compose would warn and pass ''"
