"""Security defaults that hold for every way mlops-ray is deployed, checked on the files themselves.

Token authentication on in every cluster config, services bound to loopback unless a
manifest says otherwise on purpose, and no password, token or key written anywhere in
the repository: credentials come from the environment or from Secrets the user creates.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from mlops_ray.config import RayConfig, ServeConfig

ROOT = Path(__file__).resolve().parents[2]
# A literal credential: `password: "abc123..."`, `TOKEN=abcdef...`, `secret_key = 'xyz...'`, or a password inside a URL.
LITERAL_SECRET = re.compile(
    r"""(?ix)
    (password|passwd|secret|token|api_key)\w*["']?\s*[=:]\s*["']?(?!\$|\.\.\.|<|\{)[A-Za-z0-9+/_\-]{8,}["']?\s*$
    | ://[A-Za-z0-9_.\-]+:(?!\$|\.\.\.|<|\{)[^@/\s]+@
    """
)
SCANNED = (".py", ".yaml", ".yml", ".md", ".toml", ".sh", ".ini", ".cfg", ".json", ".txt", "Dockerfile", "Makefile")


def repository_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    names = listed.stdout.split() if listed.returncode == 0 else [str(p.relative_to(ROOT)) for p in ROOT.rglob("*")]
    return [ROOT / n for n in names if n.endswith(SCANNED) and not n.startswith("tests/") and (ROOT / n).is_file()]


def test_the_scan_finds_a_literal_credential_and_passes_references() -> None:
    for line in (
        'MLFLOW_AUTH_ADMIN_PASSWORD: "password1234"',
        "RAY_AUTH_TOKEN=0a1b2c3d4e5f6a7b",
        "postgresql://u:hunter22@db",
    ):
        assert LITERAL_SECRET.search(line), line
    for line in (
        "--from-literal=MLFLOW_TRACKING_PASSWORD=...",
        "MLFLOW_TRACKING_PASSWORD: ${{ secrets.MLFLOW_TRACKING_PASSWORD }}",
        "postgresql://mlflow:$(POSTGRES_PASSWORD)@postgres:5432/mlflow",
        '"MLFLOW_AUTH_ADMIN_PASSWORD": password,',
    ):
        assert not LITERAL_SECRET.search(line), line


def test_no_password_token_or_key_is_written_in_the_repository() -> None:
    files = repository_files()
    assert len(files) > 50
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if LITERAL_SECRET.search(line)
    ]
    assert found == []


def test_every_cluster_config_turns_token_auth_on() -> None:
    documents = [
        d for p in (ROOT / "cluster" / "kuberay").glob("*.yaml") for d in yaml.safe_load_all(p.read_text()) if d
    ]
    for document in documents:
        if document["kind"] == "RayCluster":
            assert document["spec"]["authOptions"] == {"mode": "token"}
        if document["kind"] == "RayService":
            assert document["spec"]["rayClusterConfig"]["authOptions"] == {"mode": "token"}
        if document["kind"] == "RayJob":  # runs on the RayCluster above, never a cluster of its own
            assert "clusterSelector" in document["spec"] and "rayClusterSpec" not in document["spec"]
    for name in ("aws.yaml", "gcp.yaml"):
        launcher = yaml.safe_load((ROOT / "cluster" / "launcher" / name).read_text())
        starts = launcher["head_start_ray_commands"] + launcher["worker_start_ray_commands"]
        ray_starts = [c for c in starts if "ray start" in c]
        assert len(ray_starts) == 2 and all(c.startswith("RAY_AUTH_MODE=token ") for c in ray_starts)
        assert launcher["file_mounts"]["/home/ubuntu/.ray/auth_token"] == "~/.ray/auth_token"
    local = (ROOT / "cluster" / "local" / "cluster.py").read_text()
    assert '"RAY_AUTH_MODE": "token"' in local and "--app-name=basic-auth" in local


def test_mlflow_servers_run_behind_authentication_with_credentials_from_secrets() -> None:
    manifest = (ROOT / "cluster" / "kuberay" / "mlflow.yaml").read_text()
    (server,) = [
        d
        for d in yaml.safe_load_all(manifest)
        if d and d["metadata"]["name"] == "mlflow" and "spec" in d and d["kind"] == "Deployment"
    ]
    container = server["spec"]["template"]["spec"]["containers"][0]
    assert "--app-name=basic-auth" in container["args"]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"]}
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"] == "mlflow-credentials" and "MLFLOW_FLASK_SERVER_SECRET_KEY" in env


@pytest.mark.parametrize("text", ["", "port: 8000"])
def test_local_services_listen_on_loopback_by_default(text: str) -> None:
    assert ServeConfig.model_validate(yaml.safe_load(text) or {}).host == "127.0.0.1"
    runtime = (ROOT / "mlops_ray" / "runtime.py").read_text()
    assert '"dashboard_host": "127.0.0.1"' in runtime
    assert RayConfig().include_dashboard is True  # on, and on loopback only
