"""The course as a learner meets it: JupyterLab in a real browser, Run All, then the widgets.

JupyterLab runs on loopback with a token, serving a temporary copy of
notebooks/ (JupyterLab autosaves: the repository's files are never opened),
with the course's own settings (binder/jupyter-config: no news pop-up) plus the
test's. Python playwright drives Debian's headless Chromium (/usr/bin/chromium)
at 1366x900 with the file browser open, as a learner has it. Pitfalls avoided
(shared/reference/jupyter-testing-notes.md):
- the status bar says "Idle" before a kernel exists, and Run All then opens a
  kernel picker: Lab runs with --LabApp.expose_app_in_browser=True, the test
  opens each lesson through window.jupyterapp with an explicit python3 kernel
  and waits until that kernel is connected and idle;
- awaiting the run-all command can hang: it is started, not awaited, and the
  test waits for execution counts and prompts on the page instead;
- notebook windowing would keep off-screen cells out of the page: it is off.

What it checks and measures:
- every lesson (found by glob) runs clean, and no output of any lesson scrolls
  sideways;
- every plot type (a gallery notebook made here draws each, the fault lab
  panel included): the smallest text on screen, in screen pixels, at 100 % and
  at 150 % browser zoom (emulated: device scale 1.5 in a 911 px wide viewport,
  what Chromium's zoom does), with the browser's own fonts, and that no text
  overlaps other text or is cut off;
- the fault lab lesson: a slider move to new plots, median of 10 moves (timed
  in the page, from the key press to both new images decoded); Run with the
  same settings visibly runs; Cancel stops a long run.
The figures go to test-artifacts/browser-measurements.json and are printed;
screenshots go to test-artifacts/screenshots/ (gitignored).

One Lab, one browser page, one notebook at a time. Deselect locally with
`pytest -m "not browser"`; in CI a missing chromium or playwright fails.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import lab_process
import nbformat
import pytest
from conftest import NO_SKIP, require_tool
from nbformat.v4 import new_code_cell, new_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
MEASUREMENTS = ARTIFACTS / "browser-measurements.json"
LESSONS = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
COURSE_SETTINGS = ROOT / "binder" / "jupyter-config"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREEN = {"width": 1366, "height": 900}  # a laptop on a projector (the learner walk's)
ZOOM_150 = {"width": 911, "height": 600, "deviceScaleFactor": 1.5, "mobile": False}
SMALLEST_SCREEN_PX = 12  # no text on screen smaller than this
# Generous, for a loaded CI machine; a run here needs a fraction of each.
LAB_START_S = 90
KERNEL_S = 60
RUN_ALL_S = 120
WIDGET_S = 30

# The test server's own settings on top of the course's, as <JUPYTER_CONFIG_DIR>/
# labconfig/default_setting_overrides.json (read by jupyterlab_server). The news
# setting is deliberately not here: the course's file must turn it off.
TEST_SETTINGS = {
    # every cell in the page, on screen or not
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
    # the extension manager would ask PyPI: no network needed, none used
    "@jupyterlab/extensionmanager-extension:plugin": {"enabled": False},
}

# Tracebacks and anything printed to stderr (warnings too) render with this type.
ERROR_OUTPUTS = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'

# Every plot type, one per cell of a gallery notebook made for this test.
GALLERY = "gallery/plots.ipynb"
GALLERY_SETUP = """\
from labsmtp import LabNet, LabServer, compare_steps, plots, trials, widgets
server = LabServer(name="gallery", seed=1).start()
net = LabNet(seed=9).start()
net.server("mx1.shop.example").faults.add("connect:421")
sent = net.send("ada@home.example", ["bob@shop.example", "nobody@shop.example"])
mixed = trials.run_trials(server, 100, retry="mta", seed=4,
                          faults=["rcpt:451:0.3", "mail:550:0.1", "data:drop:0.05"])
grey = trials.run_trials(server, 40, retry="mta", seed=1, faults=["rcpt:greylist=300s"])
c = server.client()
c.ehlo("client.example.org"); c.mail("ada@example.org"); c.rcpt("postmaster@lab.example.org")
c.data("Subject: gallery\\r\\n\\r\\nhello\\r\\n"); c.quit()
"""
GALLERY_PLOTS = {
    "ladder": "plots.ladder(server)",
    "state diagram": "plots.state_diagram(server.sessions[-1])",
    "outcome bars": "plots.outcome_bars(mixed)",
    "codes by stage": "plots.codes_by_stage(mixed)",
    "usual replies": "plots.legal_replies()",
    "retry timeline": "plots.retry_timeline(grey)",
    "latency": "plots.latency_histogram(mixed)",
    "comparison grid": "plots.plot_comparison(compare_steps())",
    "MX attempts": "plots.mx_attempts(sent)",
    "fault lab panel": "widgets.fault_lab(server)",
}

# --- page-side probes: window.jupyterapp exists thanks to expose_app_in_browser ------
# Each notebook's NotebookPanel is kept in window.__labsmtp[path].

OPEN_JS = """(path) => {
  window.__labsmtp = window.__labsmtp || {};
  const entry = window.__labsmtp[path] = {panel: null, error: null};
  window.jupyterapp.commands
    .execute('docmanager:open', {path, factory: 'Notebook', kernel: {name: 'python3'}})
    .then(panel => { entry.panel = panel; }, err => { entry.error = String(err); });
}"""

KERNEL_READY_JS = """(path) => {
  const entry = window.__labsmtp[path];
  if (entry.error) return 'opening failed: ' + entry.error;
  const ctx = entry.panel && entry.panel.sessionContext;
  const kernel = ctx && ctx.session && ctx.session.kernel;
  return Boolean(kernel && ctx.isReady && kernel.connectionStatus === 'connected'
                 && kernel.status === 'idle' && entry.panel.content.widgets.length > 0);
}"""

# Where Run All is, from the page: prompts ("[*]:" while queued or running),
# execution counts, error outputs, the kernel's status.
RUN_STATE_JS = """(path) => {
  const panel = window.__labsmtp[path].panel;
  const code = panel.content.widgets.filter(
    c => c.model.type === 'code' && c.model.sharedModel.getSource().trim() !== '');
  const prompts = code.map(c => (c.node.querySelector('.jp-InputPrompt') || {}).textContent || '');
  return {
    cells: code.length,
    counted: code.filter(c => c.model.executionCount !== null).length,
    running: prompts.filter(p => p.includes('*')).length,
    errors: panel.node.querySelectorAll(
      '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').length,
    kernel: panel.sessionContext.session.kernel.status,
  };
}"""

RUN_DONE_JS = f"""(path) => {{
  const s = ({RUN_STATE_JS})(path);
  return s.kernel === 'dead'
    || (s.running === 0 && s.kernel === 'idle' && (s.counted === s.cells || s.errors > 0));
}}"""

# Every code cell: its index, source, error/stderr outputs, and whether it shows an image.
CELLS_JS = """(path) => window.__labsmtp[path].panel.content.widgets
  .map((cell, index) => ({index, cell}))
  .filter(({cell}) => cell.model.type === 'code')
  .map(({index, cell}) => ({
    index,
    source: cell.model.sharedModel.getSource(),
    problems: cell.model.outputs.toJSON()
      .filter(o => o.output_type === 'error' || (o.output_type === 'stream' && o.name === 'stderr'))
      .map(o => o.output_type === 'error' ? `${o.ename}: ${o.evalue}` : String(o.text).slice(0, 300)),
    image: cell.node.querySelector('.jp-OutputArea img') !== null,
  }))"""

# Anything in an output that scrolls sideways: an element that can scroll
# (overflow-x auto or scroll; JupyterLab's output areas are) and whose content
# is wider than it, and the notebook itself.
SIDEWAYS_JS = """(path) => {
  const panel = window.__labsmtp[path].panel;
  const found = [];
  panel.content.widgets.forEach((cell, index) => {
    if (cell.model.type !== 'code') return;
    cell.node.querySelectorAll('.jp-OutputArea-output, .jp-OutputArea-output *').forEach(el => {
      const overflow = getComputedStyle(el).overflowX;
      if ((overflow === 'auto' || overflow === 'scroll') && el.scrollWidth > el.clientWidth + 1) {
        found.push(`cell ${index}: ${el.tagName.toLowerCase()}.${String(el.className).split(' ')[0]} `
          + `${el.scrollWidth} px wide in ${el.clientWidth} px: `
          + JSON.stringify((el.innerText || '').trim().slice(0, 80)));
      }
    });
  });
  const scroller = panel.content.node;
  if (scroller.scrollWidth > scroller.clientWidth + 1) {
    found.push(`the notebook: ${scroller.scrollWidth} px wide in ${scroller.clientWidth} px`);
  }
  return found;
}"""

# The SVG images of cell ``index``: each one's text measured as the screen shows it.
# The SVG source is laid out inline at the image's displayed size, so the text
# boxes come from the browser's own fonts; the font size on screen is the SVG
# font size times the image's scale times the device pixel ratio.
MEASURE_JS = """async ([path, index]) => {
  const cell = window.__labsmtp[path].panel.content.widgets[index];
  const out = [];
  for (const img of cell.node.querySelectorAll('.jp-OutputArea-output img')) {
    await img.decode().catch(() => {});
    const source = await (await fetch(img.src)).text();
    const svg = new DOMParser().parseFromString(source, 'image/svg+xml').documentElement;
    if (svg.tagName.toLowerCase() !== 'svg') { out.push({error: 'not an SVG image'}); continue; }
    const shown = img.getBoundingClientRect();
    const viewBox = svg.viewBox.baseVal;
    const holder = document.createElement('div');
    holder.style.cssText = 'position:absolute;left:0;top:0;visibility:hidden';
    svg.setAttribute('width', shown.width);
    svg.setAttribute('height', shown.height);
    holder.appendChild(document.importNode(svg, true));
    document.body.appendChild(holder);
    const inline = holder.firstChild, frame = inline.getBoundingClientRect();
    const scale = shown.width / viewBox.width * window.devicePixelRatio;
    const texts = [...inline.querySelectorAll('text')]
      .filter(t => t.textContent.trim())
      .map(t => ({text: t.textContent.trim().slice(0, 40),
                  px: parseFloat(getComputedStyle(t).fontSize) * scale,
                  box: t.getBoundingClientRect()}));
    const problems = [];
    for (const t of texts) {
      const b = t.box;
      if (b.left < frame.left - 0.5 || b.right > frame.right + 0.5
          || b.top < frame.top - 0.5 || b.bottom > frame.bottom + 0.5) {
        problems.push(`cut off: ${JSON.stringify(t.text)}`);
      }
    }
    for (let i = 0; i < texts.length; i++) for (let j = i + 1; j < texts.length; j++) {
      const a = texts[i].box, b = texts[j].box;
      if (a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1) {
        problems.push(`overlap: ${JSON.stringify(texts[i].text)} / ${JSON.stringify(texts[j].text)}`);
      }
    }
    holder.remove();
    out.push({
      texts: texts.length,
      smallest_px: Math.min(...texts.map(t => t.px)),
      smallest_text: texts.reduce((m, t) => (t.px < m.px ? t : m), texts[0]).text,
      shown_css_px: shown.width, natural_css_px: img.naturalWidth,
      column_css_px: cell.node.querySelector('.jp-OutputArea-output').clientWidth,
      dpr: window.devicePixelRatio, problems,
    });
  }
  return out;
}"""

CLOSE_JS = """(path) => {
  const entry = window.__labsmtp[path];
  if (!entry || !entry.panel || entry.panel.isDisposed) return;
  entry.panel.sessionContext.shutdown().finally(() => entry.panel.dispose());
}"""

# --- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def playwright_api():
    """playwright.sync_api; without it or chromium: a skip locally, a failure in CI."""
    require_tool("chromium", CHROMIUM)
    if importlib.util.find_spec("playwright") is None:
        # A pip package, not a program: require_tool's rule with pip's advice.
        msg = "playwright is not installed (it is in requirements-dev.txt: make test installs it)"
        if NO_SKIP:
            pytest.fail(msg)
        pytest.skip(msg)
    from playwright import sync_api

    return sync_api


class Lab:
    """A JupyterLab server and one browser page showing it."""

    def __init__(self, url: str, port: int, token: str, log: Path, page):
        self.url, self.port, self.token, self.log, self.page = url, port, token, log, page
        self.timings: dict[str, float] = {}
        self.measured: dict = {}


def _copy_stripped(src: Path, dest: Path) -> None:
    """The lessons without outputs a rehearsal may have saved (they are not the lesson)."""
    dest.mkdir(parents=True)
    for path in src.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        nbformat.write(nb, dest / path.name)
    for path in src.iterdir():
        if path.suffix != ".ipynb" and path.is_file():
            shutil.copy2(path, dest / path.name)


# The last gallery cell is wider than the column on purpose: the sideways check
# must find it (a check that cannot fail is no check).
TOO_WIDE = "from IPython.display import HTML\nHTML(\"<div style='width:3000px'>too wide</div>\")"


def _gallery(dest: Path) -> None:
    nb = new_notebook()
    nb.cells = (
        [new_code_cell(GALLERY_SETUP)]
        + [new_code_cell(c) for c in GALLERY_PLOTS.values()]
        + [new_code_cell(TOO_WIDE)]
    )
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dest)


@pytest.fixture(scope="module")
def lab(tmp_path_factory, playwright_api, request):
    """JupyterLab on 127.0.0.1 (a temporary copy of notebooks/) open in headless Chromium.

    Everything is stopped afterwards, also after a failure: the browser, then the
    server and its process group (kernels included).
    """
    started = time.perf_counter()
    tmp = tmp_path_factory.mktemp("browser-lab")
    root = tmp / "course"
    _copy_stripped(ROOT / "notebooks", root / "notebooks")
    _gallery(root / GALLERY)
    env = lab_process.isolated_env(tmp)
    env["JUPYTER_CONFIG_PATH"] = str(COURSE_SETTINGS)  # the course's settings, as make lab
    labconfig = Path(env["JUPYTER_CONFIG_DIR"]) / "labconfig"
    labconfig.mkdir(parents=True)
    (labconfig / "default_setting_overrides.json").write_text(json.dumps(TEST_SETTINGS))
    port, token = lab_process.free_port(), lab_process.new_token()
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--ServerApp.ip={lab_process.HOST}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",  # a taken port is an error, not a quiet move
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True",
    ]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    log = tmp / "jupyterlab.log"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):  # this test's folder: no stale pictures
        old.unlink()
    with ExitStack() as stack:
        proc = lab_process.start(cmd, cwd=root, env=env, log=log)
        stack.callback(lab_process.stop, proc, port, token)
        # The browser starts while the server boots (each takes seconds).
        pw = stack.enter_context(playwright_api.sync_playwright())
        context = pw.chromium.launch_persistent_context(
            str(tmp / "chromium-profile"),  # fresh profile
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=SCREEN,
        )
        stack.callback(context.close)
        lab_process.wait_for_status(proc, port, token, log, timeout=LAB_START_S)
        page = context.pages[0] if context.pages else context.new_page()
        page.set_default_timeout(WIDGET_S * 1000)
        # A workspace of its own: nothing restored from an earlier session.
        page.goto(
            f"http://{lab_process.HOST}:{port}/lab/workspaces/browser-test?token={token}",
            timeout=LAB_START_S * 1000,
        )
        page.wait_for_function(
            "() => window.jupyterapp && window.jupyterapp.shell", timeout=LAB_START_S * 1000
        )
        # (page.evaluate would await the promise without a timeout; a flag is waited for.)
        page.evaluate(
            "() => { window.jupyterapp.restored.then(() => { window.__restored = 1; }); }"
        )
        page.wait_for_function("() => window.__restored === 1", timeout=LAB_START_S * 1000)
        # The file browser open, as a newcomer has it: the narrower column is the test.
        page.evaluate("() => window.jupyterapp.shell.activateById('filebrowser')")
        lab = Lab(f"http://{lab_process.HOST}:{port}", port, token, log, page)
        lab.timings["Lab and browser started"] = time.perf_counter() - started
        yield lab
        ARTIFACTS.mkdir(exist_ok=True)
        MEASUREMENTS.write_text(json.dumps(lab.measured, indent=2) + "\n")
        capture = request.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled():
            print(f"\nbrowser test: screenshots in {SCREENSHOTS}, figures in {MEASUREMENTS}")
            for what, value in lab.measured.items():
                print(f"browser test: {what}: {value}")
            for what, seconds in lab.timings.items():
                print(f"browser test: {what}: {seconds:.1f} s")


class Notebook:
    """One notebook after Run All: its page, cells and run state."""

    def __init__(self, lab: Lab, path: str, state: dict, cells: list[dict]):
        self.lab, self.path, self.state, self.cells = lab, path, state, cells
        self.page = lab.page
        self.name = Path(path).name

    def problems(self) -> list[str]:
        return [f"cell {c['index']}: {p}" for c in self.cells for p in c["problems"]]


def run_notebook(lab: Lab, path: str) -> Notebook:
    """Open ``path`` with a python3 kernel, start Run All, wait until the page shows it done."""
    page = lab.page
    started = time.perf_counter()
    page.evaluate(OPEN_JS, path)
    ready = page.wait_for_function(KERNEL_READY_JS, arg=path, timeout=KERNEL_S * 1000)
    assert ready.json_value() is True, ready.json_value()
    # Started, not awaited: awaiting run-all can hang. The page says when it is done.
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    page.wait_for_function(RUN_DONE_JS, arg=path, timeout=RUN_ALL_S * 1000, polling=100)
    nb = Notebook(lab, path, page.evaluate(RUN_STATE_JS, path), page.evaluate(CELLS_JS, path))
    assert nb.state["kernel"] != "dead", f"{path}: the kernel died during Run All"
    page.wait_for_timeout(300)  # let the last outputs and images settle
    lab.timings[f"{nb.name}: opened and ran all cells"] = time.perf_counter() - started
    if nb.state["errors"]:  # a picture of the first error, for whoever reads the CI log
        shoot(page, page.locator(ERROR_OUTPUTS).first, SCREENSHOTS / f"{nb.name[:-6]}-ERROR.png")
    return nb


def close_notebook(lab: Lab, path: str) -> None:
    """Shut down the notebook's kernel and close it (the temporary copy is not saved)."""
    lab.page.evaluate(CLOSE_JS, path)
    lab.page.wait_for_function(
        "(path) => window.__labsmtp[path].panel.isDisposed", arg=path, timeout=KERNEL_S * 1000
    )


def _lesson_with(text: str) -> str:
    """The lesson whose code contains ``text`` (lessons get renumbered: never by number)."""
    for name in LESSONS:
        nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
        if any(text in c.source for c in nb.cells if c.cell_type == "code"):
            return name
    raise AssertionError(f"no lesson contains {text!r} any more: update this test")


@pytest.fixture(scope="module")
def fault_lab_lesson(lab):
    path = f"notebooks/{_lesson_with('widgets.fault_lab')}"
    yield run_notebook(lab, path)
    close_notebook(lab, path)


@pytest.fixture(autouse=True)
def screenshot_on_failure(lab, request):
    """After a failed test, a picture of the page as it was: <test name>-FAILED.png."""
    failed_before = request.session.testsfailed
    yield
    if request.session.testsfailed > failed_before:  # the call's report is already counted
        lab.page.screenshot(path=str(SCREENSHOTS / f"{request.node.name}-FAILED.png"))


def shoot(page, locator, path: Path) -> None:
    """A screenshot of the page with ``locator`` scrolled to the top."""
    locator.evaluate("el => el.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(200)  # let images decode and the layout settle
    page.screenshot(path=str(path))


def assert_ran_clean(nb: Notebook) -> None:
    page = nb.page
    problems = nb.problems()
    assert not problems, f"{nb.name}: error or stderr outputs:\n" + "\n".join(problems)
    assert page.locator(ERROR_OUTPUTS).count() == 0
    assert nb.state["counted"] == nb.state["cells"], f"not every cell ran: {nb.state}"
    assert page.get_by_text("Error displaying widget").count() == 0


# --- the course's settings -----------------------------------------------------------


def test_the_course_settings_turn_off_the_news_pop_up(lab):
    assert lab_process.notification_defaults(lab.port, lab.token) == {
        "fetchNews": "false",
        "checkForUpdates": False,
    }


# --- every lesson: runs clean, nothing scrolls sideways ------------------------------


@pytest.mark.parametrize("name", LESSONS)
def test_lesson_runs_clean_and_no_output_scrolls_sideways(lab, name):
    path = f"notebooks/{name}"
    nb = run_notebook(lab, path)
    try:
        assert_ran_clean(nb)
        sideways = lab.page.evaluate(SIDEWAYS_JS, path)
        if sideways:
            first = int(sideways[0].split()[1].rstrip(":")) if sideways[0].startswith("cell") else 0
            cell = lab.page.locator(".jp-Notebook .jp-Cell").nth(first)
            shoot(lab.page, cell, SCREENSHOTS / f"{name[:-6]}-SIDEWAYS.png")
        assert not sideways, f"{name}: outputs wider than the column at 1366 px:\n" + "\n".join(
            sideways
        )
        blank = [
            f"cell {c['index']}: {c['source'].strip()[:80]}"
            for c in nb.cells
            if "plots." in c["source"]
            and "(" in c["source"]
            and not c["image"]
            and c["source"].strip().startswith("plots.")
        ]
        assert not blank, "these cells draw a plot but show no image:\n" + "\n".join(blank)
        if name.startswith("00-"):
            transcript = lab.page.locator(
                "table.labsmtp-t", has=lab.page.locator("th", has_text="who")
            ).last
            text = transcript.inner_text()
            for expected in ("220 ", "HELO client.example.org", "QUIT", "221 ", "client"):
                assert expected in text, f"{expected!r} is not in the transcript table:\n{text}"
            shoot(lab.page, transcript, SCREENSHOTS / "00-start-here.png")
    finally:
        close_notebook(lab, path)


# --- every plot type, on screen at 100 % and 150 % zoom ----------------------------------


def test_every_plot_is_readable_on_screen_at_100_and_150_percent_zoom(lab):
    page = lab.page
    nb = run_notebook(lab, GALLERY)
    cdp = page.context.new_cdp_session(page)
    try:
        assert_ran_clean(nb)
        sideways = page.evaluate(SIDEWAYS_JS, GALLERY)
        assert len(sideways) == 1 and "too wide" in sideways[0], sideways
        # The panel draws in the background: wait for its two images.
        page.wait_for_function(
            "() => [...document.querySelectorAll('img.widget-image')]"
            ".filter(i => i.complete && i.naturalWidth > 100).length >= 2",
            timeout=WIDGET_S * 1000,
        )
        results: dict[str, dict] = {}
        for zoom, metrics in (("100%", None), ("150%", ZOOM_150)):
            if metrics:
                cdp.send("Emulation.setDeviceMetricsOverride", metrics)
                page.wait_for_timeout(1500)  # JupyterLab lays itself out again
            for index, name in enumerate(GALLERY_PLOTS, start=1):
                images = page.evaluate(MEASURE_JS, [GALLERY, index])
                assert images, f"{name}: no image in cell {index}"
                for k, image in enumerate(images):
                    assert "error" not in image, f"{name}: {image}"
                    label = name if len(images) == 1 else f"{name} ({k + 1})"
                    results.setdefault(label, {})[zoom] = image
            page.screenshot(path=str(SCREENSHOTS / f"gallery-{zoom[:-1]}.png"))
    finally:
        cdp.send("Emulation.clearDeviceMetricsOverride")
        page.wait_for_timeout(500)
        close_notebook(lab, GALLERY)

    table = {
        label: {zoom: round(m["smallest_px"], 1) for zoom, m in by_zoom.items()}
        for label, by_zoom in results.items()
    }
    lab.measured["smallest text on screen, px (100% / 150% zoom, file browser open)"] = table
    lab.measured["smallest text of all plots, px"] = {
        zoom: round(min(m[zoom]["smallest_px"] for m in results.values()), 1)
        for zoom in ("100%", "150%")
    }
    small, broken, squeezed = [], [], []
    for label, by_zoom in results.items():
        for zoom, m in by_zoom.items():
            if m["smallest_px"] < SMALLEST_SCREEN_PX:
                small.append(
                    f"{label} at {zoom}: {m['smallest_px']:.1f} px ({m['smallest_text']!r})"
                )
            broken += [f"{label} at {zoom}: {p}" for p in m["problems"]]
            # Shown at its real CSS size, so it grows with zoom like the text around it
            # (at 150 % with the file browser open, a wide one scrolls sideways then).
            if abs(m["shown_css_px"] - m["natural_css_px"]) > 2:
                squeezed.append(
                    f"{label} at {zoom}: {m['shown_css_px']:.0f} px, not {m['natural_css_px']}"
                )
        assert by_zoom["100%"]["natural_css_px"] <= by_zoom["100%"]["column_css_px"], (
            f"{label} is wider than the notebook column at 1366 px"
        )
    assert not small, "text smaller than 12 screen px:\n" + "\n".join(small)
    assert not broken, "text overlapping or cut off:\n" + "\n".join(broken)
    assert not squeezed, "images not shown at their own size:\n" + "\n".join(squeezed)
    assert len(results) == len(GALLERY_PLOTS) + 1  # the panel has two plots


# --- the fault lab lesson ------------------------------------------------------------


def fault_lab_panel(page):
    """The output that holds widgets.fault_lab(server): controls above two plot images."""
    return page.locator(".jp-OutputArea-output", has=page.locator("img.widget-image")).last


def _slider(panel, page, label: str):
    return panel.locator(".widget-slider", has=page.locator(".widget-label", has_text=label))


# Page-side timing of one run: from a key press on a slider handle (captured)
# to the panel's message naming the next run as drawn, and both images decoded.
TIME_RUN_JS = """(panel, [handle, run]) => {
  window.__labsmtp.timing = null;
  const message = panel.querySelector('.labsmtp-message');
  const images = [...panel.querySelectorAll('img.widget-image')];
  let started = null;
  handle.addEventListener('keydown', () => { started = started || performance.now(); },
                          {capture: true, once: true});
  const observer = new MutationObserver(async () => {
    const text = message.textContent;
    if (started === null || !text.includes(`Run #${run}`) || !/drawn in|not run/.test(text)) return;
    observer.disconnect();
    await Promise.all(images.map(i => i.decode().catch(() => {})));
    window.__labsmtp.timing = {ms: performance.now() - started, text};
  });
  observer.observe(message, {childList: true, subtree: true, characterData: true});
}"""


def _run_number(panel) -> int:
    text = panel.locator(".labsmtp-message").inner_text()
    return int(text.split("Run #", 1)[1].split()[0]) if "Run #" in text else 0


def test_fault_lab_lesson_runs_clean_and_renders_its_widgets(fault_lab_lesson):
    page = fault_lab_lesson.page
    assert_ran_clean(fault_lab_lesson)
    panel = fault_lab_panel(page)
    panel.wait_for(state="visible")
    assert _slider(panel, page, "probability").locator(".noUi-handle").is_visible()
    assert panel.get_by_role("button", name="Run").is_visible(), "no Run button"
    assert "runs the trials again at once" in panel.inner_text().replace("\xa0", " ")
    assert panel.locator(".widget-dropdown select").count() >= 2  # stage, action
    images = panel.locator("img.widget-image")
    assert images.count() == 2
    assert images.first.evaluate("img => img.complete && img.naturalWidth > 300")
    shoot(page, panel, SCREENSHOTS / "fault-lab.png")


def test_fault_lab_slider_moves_redraw_quickly_and_run_visibly_runs_again(fault_lab_lesson):
    page, lab = fault_lab_lesson.page, fault_lab_lesson.lab
    panel = fault_lab_panel(page)
    panel.evaluate("el => el.scrollIntoView({block: 'start'})")
    handle = _slider(panel, page, "probability").locator(".noUi-handle")
    handle.focus()
    times = []
    for _ in range(10):  # 0.30 -> 0.80 one step at a time, then the median
        run = _run_number(panel) + 1
        panel.evaluate(TIME_RUN_JS, [handle.element_handle(), run])
        handle.press("ArrowRight")
        page.wait_for_function(
            "() => window.__labsmtp.timing !== null", timeout=WIDGET_S * 1000, polling=50
        )
        timing = page.evaluate("() => window.__labsmtp.timing")
        assert "drawn in" in timing["text"], timing["text"]
        times.append(timing["ms"] / 1000)
    median = statistics.median(times)
    lab.measured["fault lab: slider move to new plots, median of 10 (s)"] = round(median, 3)
    lab.measured["fault lab: the 10 moves (s)"] = [round(t, 3) for t in times]
    assert _slider(panel, page, "probability").locator(".widget-readout").inner_text() == "0.80"
    # A freeze would be seconds; the target (0.3 s) is reported, not asserted: the
    # machine is shared, and absolute wall times are for the README, not for CI.
    assert median < 5, f"slider moves took {times}"

    # Run with the same settings: a new run number, so the learner sees it ran.
    before = _run_number(panel)
    panel.get_by_role("button", name="Run").click()
    page.wait_for_function(
        "([el, n]) => el.textContent.includes(`Run #${n}`) && /drawn in/.test(el.textContent)",
        arg=[panel.locator(".labsmtp-message").element_handle(), before + 1],
        timeout=WIDGET_S * 1000,
    )
    assert page.locator(ERROR_OUTPUTS).count() == 0
    shoot(page, panel, SCREENSHOTS / "fault-lab-after-run.png")
    # For the README: JupyterLab's menu and tab, the panel, down to the bottom of its plots.
    plots_bottom = panel.locator("img.widget-image").last.bounding_box()
    page.screenshot(
        path=str(SCREENSHOTS / "fault-lab-readme.png"),
        clip={
            "x": 0,
            "y": 0,
            "width": page.viewport_size["width"],
            "height": min(
                page.viewport_size["height"], plots_bottom["y"] + plots_bottom["height"] + 4
            ),
        },
    )


def test_fault_lab_cancel_stops_a_long_run(fault_lab_lesson):
    page, lab = fault_lab_lesson.page, fault_lab_lesson.lab
    path = fault_lab_lesson.path
    panel = fault_lab_panel(page)
    # Every run on this machine may be quicker than the one second after which the
    # panel offers Cancel; the kernel is told to offer it sooner for this test.
    page.evaluate(
        """(path) => { window.__labsmtp[path].panel.sessionContext.session.kernel.requestExecute(
             {code: 'import labsmtp.classroom.widgets as _w; _w._BUSY_AFTER = 0.1'}); }""",
        path,
    )
    page.wait_for_timeout(300)
    panel.locator(".widget-toggle-buttons button", has_text="naive").click()
    page.wait_for_function(
        "(el) => /drawn in/.test(el.textContent)",
        arg=panel.locator(".labsmtp-message").element_handle(),
    )
    # Probability 1 with retry naive: five attempts per trial, the longest runs.
    probability = _slider(panel, page, "probability").locator(".noUi-handle")
    probability.focus()
    probability.press("End")
    page.wait_for_function(
        "(el) => /fault rcpt:451;.*drawn in/.test(el.textContent)",
        arg=panel.locator(".labsmtp-message").element_handle(),
        timeout=WIDGET_S * 1000,
    )
    run = _run_number(panel) + 1
    trials = _slider(panel, page, "trials").locator(".noUi-handle")
    trials.focus()
    started = time.perf_counter()
    trials.press("End")  # the most trials: the longest run
    cancel = panel.get_by_role("button", name="Cancel")
    cancel.wait_for(state="visible", timeout=WIDGET_S * 1000)
    assert panel.locator(".widget-hprogress").is_visible(), "a long run shows its progress"
    cancel.click()
    page.wait_for_function(
        "([el, n]) => el.textContent.includes(`Run #${n} (`) && /cancelled/.test(el.textContent)",
        arg=[panel.locator(".labsmtp-message").element_handle(), run],
        timeout=WIDGET_S * 1000,
    )
    lab.timings["fault lab: a long run started and cancelled"] = time.perf_counter() - started
    cancel.wait_for(state="hidden", timeout=WIDGET_S * 1000)
    assert "the plots below are still the previous run's" in panel.inner_text()
    shoot(page, panel, SCREENSHOTS / "fault-lab-cancelled.png")
