"""deploy/Dockerfile and the built image: lint clean, and nothing secret in any layer."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from harness.podman import podman

ROOT = Path(__file__).resolve().parents[2]
HADOLINT = ROOT / ".venv" / "bin" / "hadolint"


def test_dockerfile_is_hadolint_clean() -> None:
    out = subprocess.run([str(HADOLINT), str(ROOT / "deploy" / "Dockerfile")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_no_secret_in_the_image(image: str) -> None:
    """The build's CA secret and the stack's passwords are in no layer, env or history."""
    config = json.loads(podman("image", "inspect", image, check=True).stdout)[0]["Config"]
    history = podman("history", "--no-trunc", "--format", "{{.CreatedBy}}", image, check=True).stdout
    env = "\n".join(config.get("Env", []))
    for text in (env, history):
        assert "dev-secret" not in text and "PIP_CERT=/" not in text
    mount = podman("image", "mount", image, check=True).stdout.strip()
    try:
        root = Path(mount)
        assert not any((root / "run" / "secrets").glob("*")), "a build secret was left in the image"
        conf = (root / "etc" / "sahara" / "sahara.conf").read_text()
        assert [line for line in conf.splitlines() if line.strip().startswith("password")] == []
    finally:
        podman("image", "unmount", image)
