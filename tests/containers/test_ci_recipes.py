"""examples/ci/: the GitHub Actions and GitLab CI recipes, run step by step in a clean debian:12.

The steps are read from the YAML files (never copied here), run in order in one fresh debian:12
container with the container options the recipe asks for, against examples/ci/example_suite/ as
the checked-out project. Two things differ from a real CI runner, both through the environment
only: pip is pointed at the wheelhouse (PIP_NO_INDEX, PIP_FIND_LINKS: no package index is
reachable from containers here), and apt's download cache is a volume kept between runs.
"""

from __future__ import annotations

import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from dockerctl import REPO, BuildReport, Docker

pytestmark = pytest.mark.e2e

yaml = pytest.importorskip("yaml", reason="PyYAML is in vcard's test extra (scripts/setup installs it)")

EXAMPLES = REPO / "examples" / "ci"
APT_CACHE_VOLUME = "vcard-test-apt-cache"


@dataclass(frozen=True)
class Recipe:
    image: str
    options: list[str]
    env: dict[str, str]
    steps: list[str]


def github_recipe(path: Path) -> Recipe:
    doc = yaml.safe_load(path.read_text())
    (job,) = doc["jobs"].values()
    container = job["container"]
    steps = [step["run"] for step in job["steps"] if "run" in step]
    assert any("uses" in step and "checkout" in step["uses"] for step in job["steps"]), "no checkout step"
    return Recipe(container["image"], shlex.split(container.get("options", "")), dict(job.get("env", {})), steps)


def gitlab_recipe(path: Path) -> Recipe:
    doc = yaml.safe_load(path.read_text())
    jobs = [job for job in doc.values() if isinstance(job, dict) and "script" in job]
    (job,) = jobs
    # The runner's cap_add/security_opt (the file's comment) are what a GitLab admin configures.
    options = ["--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN", "--security-opt", "seccomp=unconfined"]
    steps = [*job.get("before_script", []), *job["script"]]
    return Recipe(job["image"], options, {k: str(v) for k, v in job.get("variables", {}).items()}, steps)


RECIPES = {"github-actions.yml": github_recipe, "gitlab-ci.yml": gitlab_recipe}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_is_well_formed(name: str) -> None:
    recipe = RECIPES[name](EXAMPLES / name)
    assert recipe.image == "debian:12"
    script = "\n".join(recipe.steps)
    for needed in ("pcscd", "vsmartcard-vpcd", "libpcsclite-dev", "python3-venv", "$VCARD_SPEC", "pytest"):
        assert needed in script, f"{name} does not install {needed}"
    assert recipe.steps[-1].strip().endswith(" tests"), "the last step runs the project's tests/"


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_passes_in_a_clean_debian_12(name: str, docker: Docker, images: BuildReport, tmp_path: Path) -> None:
    recipe = RECIPES[name](EXAMPLES / name)
    project = tmp_path / "project"  # the checkout: a copy, so the run leaves nothing in the repo
    shutil.copytree(EXAMPLES / "example_suite", project)
    env = {**recipe.env, "CI": "true", "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "/wheels/deps /wheels/vcard"}
    # Every step in one shell, in order, stopping at the first failure (as both runners do).
    script = "\n".join(f"echo '== step {i}' && {{\n{step}\n}}" for i, step in enumerate(recipe.steps, 1))
    args = ["run", "--rm", *recipe.options]
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    args += ["-v", f"{REPO / 'docker' / 'wheels'}:/wheels:ro", "-v", f"{project}:/project", "-w", "/project"]
    args += ["-v", f"{APT_CACHE_VOLUME}:/var/cache/apt/archives"]
    args += [recipe.image, "bash", "-eo", "pipefail", "-c", script]
    out = docker(*args, timeout=900).stdout
    assert f"== step {len(recipe.steps)}" in out
    assert "3 passed" in out, out[-3000:]
