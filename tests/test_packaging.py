"""How the course is installed: exact pins, Binder's copy of them, and what Binder builds.

Binder reads only binder/ (root requirements.txt and pyproject.toml are ignored
once it exists), so these tests keep the two sets of pins from drifting and ask
repo2docker itself which configuration it detects.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest itself depends on tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"
# The Python versions the course supports (pyproject: requires-python >= 3.10).
PYTHONS = ("3.10", "3.11", "3.12", "3.13")


def requirement_lines(path: Path) -> list[str]:
    """The requirement lines of a pip requirements file: no comments, no blanks, no -r."""
    lines = (line.split(" #")[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith(("#", "-"))]


def pins(path: Path) -> list[Requirement]:
    return [Requirement(line) for line in requirement_lines(path)]


def pinned_version(req: Requirement) -> str:
    (spec,) = req.specifier
    return spec.version


def test_binder_pins_are_the_root_pins_line_for_line():
    assert requirement_lines(BINDER / "requirements.txt") == requirement_lines(
        ROOT / "requirements.txt"
    ), "binder/requirements.txt drifted from requirements.txt: run `make pins`"


@pytest.mark.parametrize(
    "name", ["requirements.txt", "requirements-dev.txt", "requirements-hub.txt"]
)
def test_every_requirement_is_pinned_exactly(name):
    for req in pins(ROOT / name):
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"{name}: {req} is not an == pin"
        assert "*" not in specs[0].version, f"{name}: {req} is a wildcard, not a pin"


@pytest.mark.parametrize(
    "name", ["requirements.txt", "requirements-dev.txt", "requirements-hub.txt"]
)
@pytest.mark.parametrize("python", PYTHONS)
def test_each_package_has_exactly_one_pin_per_python(name, python):
    env = {"python_version": python, "python_full_version": f"{python}.0"}
    counts: dict[str, int] = {}
    for req in pins(ROOT / name):
        if req.marker is None or req.marker.evaluate(env):
            counts[canonicalize_name(req.name)] = counts.get(canonicalize_name(req.name), 0) + 1
    assert {n: c for n, c in counts.items() if c != 1} == {}


@pytest.mark.parametrize("name", ["requirements-dev.txt", "requirements-hub.txt"])
def test_dev_and_hub_requirements_include_the_learner_requirements(name):
    assert "-r requirements.txt" in (ROOT / name).read_text().splitlines()


def test_pyproject_dependencies_are_all_pinned_within_their_bounds():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = {canonicalize_name(r.name): r for r in pins(ROOT / "requirements.txt")}
    for dep in map(Requirement, project["dependencies"]):
        pin = pinned.get(canonicalize_name(dep.name))
        assert pin is not None, f"pyproject needs {dep.name} but requirements.txt does not pin it"
        assert dep.specifier.contains(pinned_version(pin)), f"{pin} is outside {dep}"


def test_the_test_environment_has_the_pinned_versions():
    # `make test` must test what a learner gets; a stale .venv shows up here.
    wrong = {}
    for name in ("requirements.txt", "requirements-dev.txt"):
        for req in pins(ROOT / name):
            if req.marker is not None and not req.marker.evaluate():
                continue
            try:
                have = importlib.metadata.version(req.name)
            except importlib.metadata.PackageNotFoundError:
                have = None
            if have != pinned_version(req):
                wrong[req.name] = (have, pinned_version(req))
    assert wrong == {}, "installed != pinned (name: (installed, pinned)); run `make test`"


def test_postbuild_is_executable_strict_and_installs_the_package():
    post_build = BINDER / "postBuild"
    assert os.access(post_build, os.X_OK), "binder/postBuild must be executable (chmod +x)"
    lines = post_build.read_text().splitlines()
    assert lines[0] == "#!/bin/bash"
    commands = [line.strip() for line in lines[1:] if line.strip() and not line.startswith("#")]
    # Without set -e a failed install would not fail the Binder build.
    assert commands[0] == "set -euo pipefail"
    # Into site-packages, not editable: on Zero to JupyterHub the learner's home
    # volume hides /home/jovyan, where an editable install would point.
    assert "pip install --no-deps ." in commands


def test_postbuild_installs_the_course_settings_where_jupyterlab_reads_them(tmp_path):
    """Binder gets the same JupyterLab settings as make lab: no news pop-up, no update check."""
    import json
    import subprocess
    import sys

    settings = BINDER / "jupyter-config" / "labconfig" / "default_setting_overrides.json"
    notification = json.loads(settings.read_text())["@jupyterlab/apputils-extension:notification"]
    assert notification == {"fetchNews": "false", "checkForUpdates": False}
    # Run postBuild's settings lines (not its pip install) with a python whose
    # sys.prefix is a scratch directory: the file lands in <prefix>/etc/jupyter/labconfig,
    # a directory on Jupyter's config path (jupyter_core: {sys.prefix}/etc/jupyter).
    lines = (BINDER / "postBuild").read_text().splitlines()
    part = "\n".join(lines[lines.index(next(ln for ln in lines if ln.startswith("settings="))) :])
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python").write_text(f"#!/bin/sh\necho {tmp_path / 'prefix'}\n")
    (fake / "python").chmod(0o755)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", part],
        cwd=ROOT,
        env={"PATH": f"{fake}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    copied = tmp_path / "prefix" / "etc" / "jupyter" / "labconfig" / settings.name
    assert copied.read_text() == settings.read_text()
    from jupyter_core.paths import jupyter_config_path

    assert os.path.join(sys.prefix, "etc", "jupyter") in jupyter_config_path()


def test_binder_apt_packages_include_swaks():
    apt = (BINDER / "apt.txt").read_text().split()
    assert "swaks" in apt


def test_binder_runs_python_3_11():
    assert (BINDER / "runtime.txt").read_text().strip() == "python-3.11"


@pytest.fixture(scope="module")
def binder_dockerfile(tmp_path_factory) -> str:
    """The Dockerfile repo2docker generates for a copy of the repository (no Docker needed)."""
    if importlib.util.find_spec("repo2docker") is None:
        pytest.fail("jupyter-repo2docker is not installed: it is in requirements-dev.txt")
    repo = tmp_path_factory.mktemp("binder-repo")
    shutil.copytree(BINDER, repo / "binder")
    for name in ("pyproject.toml", "requirements.txt", "README.md"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, repo / name)
    if (ROOT / "labsmtp").is_dir():
        shutil.copytree(ROOT / "labsmtp", repo / "labsmtp")
    # --no-build only prints the Dockerfile: no Docker daemon, no network.
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    result = subprocess.run(
        [sys.executable, "-m", "repo2docker", "--no-build", "--debug", str(repo)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    assert "FROM " in result.stdout, result.stderr
    return result.stdout


def copied_build_scripts(dockerfile: str) -> list[str]:
    """Source paths of repo2docker's `COPY build_script_files/...`, unescaped.

    repo2docker escapes each path byte as -XX (hex): `-2e` is ".", `-2f` is "/".
    """
    names = re.findall(r"COPY \S* ?build_script_files/(\S+)", dockerfile)
    return [re.sub(r"-([0-9a-f]{2})", lambda m: chr(int(m[1], 16)), n) for n in names]


def test_binder_uses_python_3_11(binder_dockerfile):
    # The conda base environment is a lock file per Python version.
    locks = [p for p in copied_build_scripts(binder_dockerfile) if "environment" in p]
    assert any("environment.py-3.11-" in p for p in locks), locks


def test_binder_installs_binder_requirements_not_the_root_ones(binder_dockerfile):
    assert re.search(r'pip install .*-r "?binder/requirements\.txt', binder_dockerfile)
    assert not re.search(r'-r "?requirements\.txt', binder_dockerfile)


def test_binder_installs_every_apt_package_in_one_apt_get_line(binder_dockerfile):
    wanted = set((BINDER / "apt.txt").read_text().split())
    installs = [line for line in binder_dockerfile.splitlines() if "apt-get install" in line]
    assert any(wanted <= set(line.split()) for line in installs), installs


def test_binder_caches_dependencies_before_copying_the_repository(binder_dockerfile):
    # Order matters for Binder's cache: dependencies, then the repo, then postBuild,
    # so a commit that changes only labsmtp/ or a notebook reuses the dependency layer.
    deps = binder_dockerfile.index('-r "binder/requirements.txt"')
    copy_repo = binder_dockerfile.index("COPY --chown=0:0 src/ ${REPO_DIR}/")
    post_build = binder_dockerfile.index("RUN ./binder/postBuild")
    assert deps < copy_repo < post_build
