"""The hub configurations, checked offline (no Kubernetes, no Helm, no Docker build here).

- deploy/z2jh/config.yaml parses, and every key it sets is one the Zero to
  JupyterHub chart's values schema knows (the paths below were read from the
  chart's jupyterhub/values.schema.yaml, chart 4.x; Helm validates the whole file
  against that schema on install). A misspelt key would otherwise be dropped by
  Helm's merge or fail only on the day.
- Its memory figures are the ones the README's sizing section states, and its
  nbgitpuller pull and default URL agree with each other and with the link in
  docs/instructors.md.
- deploy/local/jupyterhub_config.py (what tests/test_multiuser.py runs) compiles.
"""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
Z2JH = ROOT / "deploy" / "z2jh" / "config.yaml"
DOCS = ROOT / "docs" / "instructors.md"

# Key paths of the chart's values schema that this configuration may set. Below
# the paths marked FREE the schema accepts any keys (traitlets config, file
# contents, a Kubernetes lifecycle object).
KNOWN = {
    "singleuser.image.name",
    "singleuser.image.tag",
    "singleuser.memory.guarantee",
    "singleuser.memory.limit",
    "singleuser.cpu.guarantee",
    "singleuser.cpu.limit",
    "singleuser.defaultUrl",
    "singleuser.startTimeout",
    "singleuser.storage.capacity",
    "singleuser.extraFiles.*.mountPath",
    "singleuser.extraFiles.*.mode",
    "cull.enabled",
    "cull.timeout",
    "cull.every",
    "cull.maxAge",
    "cull.users",
    "prePuller.hook.enabled",
    "prePuller.continuous.enabled",
    "scheduling.userScheduler.enabled",
    "scheduling.podPriority.enabled",
    "scheduling.userPlaceholder.enabled",
    "scheduling.userPlaceholder.replicas",
}
FREE = ("hub.config.", "singleuser.lifecycleHooks.", "singleuser.extraFiles.*.data.")


def _leaves(tree, prefix=""):
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from _leaves(value, path + ".")
        else:
            yield path


def _config() -> dict:
    return yaml.safe_load(Z2JH.read_text())


def test_every_key_is_one_the_chart_schema_knows():
    unknown = []
    for path in _leaves(_config()):
        generic = re.sub(r"^singleuser\.extraFiles\.[^.]+\.", "singleuser.extraFiles.*.", path)
        if generic not in KNOWN and not generic.startswith(FREE):
            unknown.append(path)
    assert not unknown, f"keys the z2jh values schema does not have: {unknown}"
    # The checker itself sees a misspelling.
    assert "singleuser.memory.guarentee" not in KNOWN


def test_resources_are_the_measured_ones_from_the_readme():
    cfg = _config()["singleuser"]
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"memory guarantee (\d+) MB \(server \+ one lesson\), limit (\d+) MB", readme)
    assert m, "the README's sizing section states a guarantee and a limit"
    assert cfg["memory"] == {"guarantee": f"{m[1]}M", "limit": f"{m[2]}M"}
    assert 0 < cfg["cpu"]["guarantee"] < cfg["cpu"]["limit"] <= 2


def test_culling_and_the_default_pull_are_set():
    cfg = _config()
    assert cfg["cull"]["enabled"] is True and 0 < cfg["cull"]["timeout"] <= 3600
    command = cfg["singleuser"]["lifecycleHooks"]["postStart"]["exec"]["command"]
    assert command[0] == "gitpuller" and len(command) == 4  # gitpuller REPO BRANCH TARGET
    target = command[3]
    assert cfg["singleuser"]["defaultUrl"] == f"/lab/tree/{target}/notebooks/00-start-here.ipynb"
    assert (ROOT / "notebooks" / "00-start-here.ipynb").is_file()
    kernels = cfg["singleuser"]["extraFiles"]["idle-kernels"]["data"]["MappingKernelManager"]
    assert kernels["cull_idle_timeout"] > 0


def test_the_instructors_page_gives_a_working_link_form():
    text = DOCS.read_text()
    links = re.findall(r"https://[^\s`)]+/hub/user-redirect/git-pull\?[^\s`)]+", text)
    assert links, "docs/instructors.md shows the nbgitpuller link form"
    for link in links:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)
        assert set(query) >= {"repo", "branch", "urlpath"}, link
        assert query["urlpath"][0].startswith("lab/tree/labsmtp/notebooks/"), link
        notebook = query["urlpath"][0].removeprefix("lab/tree/labsmtp/")
        assert (ROOT / notebook).is_file(), f"{link} opens {notebook}, which does not exist"


def test_the_local_hub_config_compiles():
    source = (ROOT / "deploy" / "local" / "jupyterhub_config.py").read_text()
    compile(source, "jupyterhub_config.py", "exec")


def test_lessons_never_fix_a_port():
    # On a shared JupyterHub host every learner's lab server listens on the same
    # loopback: a lesson that asked for port 2525 would collide with the next learner.
    import ast
    import json

    fixed = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for i, cell in enumerate(json.loads(path.read_text())["cells"]):
            source = "".join(cell["source"])
            if cell["cell_type"] != "code":
                continue
            if re.search(r"--port[ =]?[1-9]", source):
                fixed.append(f"{path.name} cell {i}: {source[:60]}")
            python = "\n".join(
                ln for ln in source.splitlines() if not ln.lstrip().startswith(("!", "%"))
            )
            for node in ast.walk(ast.parse(python)):
                if not isinstance(node, ast.Call):
                    continue
                name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                port = node.args[0] if name == "LabServer" and node.args else None
                port = next((k.value for k in node.keywords if k.arg == "port"), port)
                if isinstance(port, ast.Constant) and port.value:
                    fixed.append(f"{path.name} cell {i}: {ast.unparse(node)[:60]}")
    assert not fixed, fixed
