"""examples/k8s/: no cluster runs here, so the manifest is checked as YAML and for what it promises.

The same images as docker-compose.yml, nothing as root, pcscd's socket shared through a volume,
card state on a persistent volume, and no ingress to pods in which vpcd listens on 0.0.0.0.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is in vcard's test extra (scripts/setup installs it)")

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "examples" / "k8s" / "card-farm.yaml"


def _docs() -> dict[str, dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d is not None]
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= doc.keys(), doc
    return {doc["kind"]: doc for doc in docs}


def test_manifest_parses_and_has_the_farm_parts() -> None:
    assert set(_docs()) == {"StatefulSet", "NetworkPolicy", "Service"}


def test_pods_share_pcscd_socket_and_network_and_run_unprivileged() -> None:
    sts = _docs()["StatefulSet"]
    pod = sts["spec"]["template"]["spec"]
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert sts["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert not pod.get("hostNetwork")
    containers = {c["name"]: c for c in pod["containers"]}
    assert set(containers) == {"pcscd", "card", "client"}
    # images: the compose file's images, by target name
    compose = (REPO / "docker-compose.yml").read_text()
    for name, c in containers.items():
        repo = c["image"].split(":")[0]
        assert f"image: {repo}:" in compose, f"{name}: {c['image']} is not an image docker-compose.yml builds"
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], name
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        assert mounts.get("pcscd-socket") == "/run/pcscd", f"{name} does not see pcscd's socket"
    defined = {v["name"] for v in pod["volumes"]} | {t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]}
    used = {m["name"] for c in containers.values() for m in c["volumeMounts"]}
    assert used <= defined, f"volumes mounted but never defined: {used - defined}"
    # the card's state lives on the claim, in a directory the card container makes its own
    card = containers["card"]
    env = {e["name"]: e["value"] for e in card["env"]}
    claim_mount = next(m["mountPath"] for m in card["volumeMounts"] if m["name"] == "card-state")
    assert env["VCARD_STATE_DIR"].startswith(claim_mount + "/")
    assert card["args"] == ["card"]


def test_no_ingress_reaches_the_vpcd_ports() -> None:
    docs = _docs()
    policy = docs["NetworkPolicy"]["spec"]
    labels = docs["StatefulSet"]["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    assert "Ingress" in policy["policyTypes"] and policy.get("ingress", []) == []
    assert not docs["Service"]["spec"].get("ports"), "the headless service must not expose a port"
    assert not re.search(r"containerPort|hostPort", MANIFEST.read_text())
