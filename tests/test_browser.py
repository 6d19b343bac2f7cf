"""The course as a learner meets it: JupyterLab in a real browser, Run All, then the widgets.

JupyterLab runs on loopback with a token, serving a temporary copy of
notebooks/ (JupyterLab autosaves: the repository's files are never opened).
Python playwright drives Debian's headless Chromium (/usr/bin/chromium);
Playwright's own browser download is not possible here.  Pitfalls avoided
(shared/reference/jupyter-testing-notes.md):
- the status bar says "Idle" before a kernel exists, and Run All then opens a
  kernel picker: Lab runs with --LabApp.expose_app_in_browser=True, the test
  opens each lesson through window.jupyterapp with an explicit python3 kernel
  and waits until that kernel is connected and idle;
- awaiting the run-all command can hang: it is started, not awaited, and the
  test waits for execution counts and prompts on the page instead;
- notebook windowing would keep off-screen cells out of the page, and the news
  toast would cover it: both are off in the test server's settings overrides.

One Lab, one browser page, one lesson at a time (run side by side on two
cores they were no faster). Screenshots go to test-artifacts/screenshots/
(gitignored); the path is printed at the end. Deselect locally with
`pytest -m "not browser"`; in CI a missing chromium or playwright fails.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import lab_process
import pytest
from conftest import NO_SKIP, require_tool

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
START_LESSON = "00-start-here.ipynb"
FAULT_LAB_LESSON = "08-inject-faults-and-retry.ipynb"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Generous, for a loaded CI machine; a run here needs a fraction of each.
LAB_START_S = 90
KERNEL_S = 60
RUN_ALL_S = 120
WIDGET_S = 30

# The test server's JupyterLab settings, as <JUPYTER_CONFIG_DIR>/labconfig/
# default_setting_overrides.json (read by jupyterlab_server).
SETTINGS = {
    # every cell in the page, on screen or not
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
    # no "receive official Jupyter news?" toast, no update check, no toasts at all
    "@jupyterlab/apputils-extension:notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
        "doNotDisturbMode": True,
    },
    # the extension manager would ask PyPI: no network needed, none used
    "@jupyterlab/extensionmanager-extension:plugin": {"enabled": False},
}

# Tracebacks and anything printed to stderr (warnings too) render with this type.
ERROR_OUTPUTS = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
PLOT_CALL = re.compile(r"^\s*plots\.\w+\(", re.MULTILINE)  # a cell that draws a figure

# --- page-side probes: window.jupyterapp exists thanks to expose_app_in_browser ------
# Each lesson's NotebookPanel is kept in window.__labsmtp[path].

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

    def __init__(self, url: str, token: str, log: Path, page):
        self.url, self.token, self.log, self.page = url, token, log, page
        self.timings: dict[str, float] = {}


@pytest.fixture(scope="module")
def lab(tmp_path_factory, playwright_api, request):
    """JupyterLab on 127.0.0.1 (a temporary copy of notebooks/) open in headless Chromium.

    Everything is stopped afterwards, also after a failure: the browser, then the
    server and its process group (kernels included).
    """
    started = time.perf_counter()
    tmp = tmp_path_factory.mktemp("browser-lab")
    root = tmp / "course"
    shutil.copytree(
        ROOT / "notebooks", root / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints")
    )
    env = lab_process.isolated_env(tmp)
    labconfig = Path(env["JUPYTER_CONFIG_DIR"]) / "labconfig"
    labconfig.mkdir(parents=True)
    (labconfig / "default_setting_overrides.json").write_text(json.dumps(SETTINGS))
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
            viewport={"width": 1400, "height": 1000},
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
        page.evaluate("() => window.jupyterapp.shell.collapseLeft()")  # room for the lesson
        lab = Lab(f"http://{lab_process.HOST}:{port}", token, log, page)
        lab.timings["Lab and browser started"] = time.perf_counter() - started
        yield lab
        capture = request.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled():
            print(f"\nbrowser test: screenshots in {SCREENSHOTS}")
            for what, seconds in lab.timings.items():
                print(f"browser test: {what}: {seconds:.1f} s")


class Lesson:
    """One lesson after Run All: its page, cells and run state."""

    def __init__(self, lab: Lab, name: str, state: dict, cells: list[dict]):
        self.lab, self.name, self.state, self.cells = lab, name, state, cells
        self.page = lab.page

    def problems(self) -> list[str]:
        return [f"cell {c['index']}: {p}" for c in self.cells for p in c["problems"]]


def run_lesson(lab: Lab, name: str) -> Lesson:
    """Open ``name`` with a python3 kernel, start Run All, wait until the page shows it done."""
    page, path = lab.page, f"notebooks/{name}"
    started = time.perf_counter()
    page.evaluate(OPEN_JS, path)
    ready = page.wait_for_function(KERNEL_READY_JS, arg=path, timeout=KERNEL_S * 1000)
    assert ready.json_value() is True, ready.json_value()
    # Started, not awaited: awaiting run-all can hang. The page says when it is done.
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    page.wait_for_function(RUN_DONE_JS, arg=path, timeout=RUN_ALL_S * 1000, polling=100)
    lesson = Lesson(lab, name, page.evaluate(RUN_STATE_JS, path), page.evaluate(CELLS_JS, path))
    assert lesson.state["kernel"] != "dead", f"{name}: the kernel died during Run All"
    lab.timings[f"{name}: opened and ran all cells"] = time.perf_counter() - started
    if lesson.state["errors"]:  # a picture of the first error, for whoever reads the CI log
        shoot(page, page.locator(ERROR_OUTPUTS).first, SCREENSHOTS / f"{name[:2]}-ERROR.png")
    return lesson


def close_lesson(lab: Lab, name: str) -> None:
    """Shut down the lesson's kernel and close it (the temporary copy is not saved)."""
    path = f"notebooks/{name}"
    lab.page.evaluate(CLOSE_JS, path)
    lab.page.wait_for_function(
        "(path) => window.__labsmtp[path].panel.isDisposed", arg=path, timeout=KERNEL_S * 1000
    )


@pytest.fixture
def start_lesson(lab):
    yield run_lesson(lab, START_LESSON)
    close_lesson(lab, START_LESSON)


@pytest.fixture(scope="module")
def fault_lab_lesson(lab):
    yield run_lesson(lab, FAULT_LAB_LESSON)
    close_lesson(lab, FAULT_LAB_LESSON)


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


def assert_ran_clean(lesson: Lesson) -> None:
    page = lesson.page
    problems = lesson.problems()
    assert not problems, f"{lesson.name}: error or stderr outputs:\n" + "\n".join(problems)
    assert page.locator(ERROR_OUTPUTS).count() == 0
    assert lesson.state["counted"] == lesson.state["cells"], f"not every cell ran: {lesson.state}"
    assert page.get_by_text("Error displaying widget").count() == 0


# --- the start lesson ------------------------------------------------------------------


def test_start_lesson_runs_clean_and_shows_the_transcript_table(start_lesson):
    page = start_lesson.page
    assert_ran_clean(start_lesson)

    # server.transcript.last(): the whole dialogue as a table, both directions.
    transcript = page.locator("table.labsmtp-t", has=page.locator("th", has_text="who")).last
    transcript.wait_for(state="visible")
    text = transcript.inner_text()
    for expected in (
        "220 ",
        "HELO client.example.org",
        "MAIL FROM:<learner@example.org>",
        "DATA",
        "QUIT",
        "221 ",
        "client",
        "server",
    ):
        assert expected in text, f"{expected!r} is not in the transcript table:\n{text}"
    shoot(page, transcript, SCREENSHOTS / "00-start-here.png")


# --- the fault lab lesson --------------------------------------------------------------


def fault_lab_panel(page):
    """The output that holds widgets.fault_lab(server): controls above a plot image."""
    return page.locator(".jp-OutputArea-output", has=page.locator("img.widget-image")).last


def test_fault_lab_lesson_runs_clean_and_renders_its_widgets(fault_lab_lesson):
    page = fault_lab_lesson.page
    assert_ran_clean(fault_lab_lesson)

    panel = fault_lab_panel(page)
    panel.wait_for(state="visible")
    probability = panel.locator(
        ".widget-slider", has=page.locator(".widget-label", has_text="probability")
    )
    assert probability.locator(".noUi-handle").is_visible(), "no probability slider"
    assert panel.get_by_role("button", name="Run").is_visible(), "no Run button"
    assert panel.locator(".widget-slider").count() >= 3  # probability, delay, trials
    assert panel.locator(".widget-dropdown select").count() >= 2  # stage, action
    assert panel.locator(".progress-bar").count() == 1
    image = panel.locator("img.widget-image")
    assert image.evaluate("img => img.complete && img.naturalWidth > 300"), "no plot image"
    shoot(page, panel, SCREENSHOTS / "06-inject-faults-and-retry.png")


def test_fault_lab_lesson_shows_every_plot_it_draws(fault_lab_lesson):
    plot_cells = [c for c in fault_lab_lesson.cells if PLOT_CALL.search(c["source"])]
    assert plot_cells, "the lesson has no plots.<name>(...) cell any more: update this test"
    blank = [f"cell {c['index']}: {c['source'].strip()}" for c in plot_cells if not c["image"]]
    assert not blank, "these cells draw a plot but show no image:\n" + "\n".join(blank)


def test_fault_lab_panel_redraws_when_a_control_changes_and_run_is_pressed(fault_lab_lesson):
    page, lab = fault_lab_lesson.page, fault_lab_lesson.lab
    started = time.perf_counter()
    panel = fault_lab_panel(page)
    panel.evaluate("el => el.scrollIntoView({block: 'start'})")
    image = panel.locator("img.widget-image")
    message = panel.locator(".widget-html").first  # "fault: ...; N trials in ..."
    probability = panel.locator(
        ".widget-slider", has=page.locator(".widget-label", has_text="probability")
    )
    first_plot = image.get_attribute("src")
    assert first_plot, "the plot image has no src"
    # Count the runs from here on: every run first resets the progress bar to 0%.
    panel.locator(".progress-bar").evaluate("""bar => {
      window.__labsmtp.runs = 0;
      new MutationObserver(() => { if (bar.style.width === '0%') window.__labsmtp.runs++; })
        .observe(bar, {attributes: true, attributeFilter: ['style']});
    }""")
    redrawn = """([img, before, msg, runs]) =>
        msg.textContent.includes('not running')
        || (window.__labsmtp.runs >= runs && img.src !== before && img.complete
            && img.naturalWidth > 300 && /drawn in/.test(msg.textContent))"""

    # A learner moves the probability slider one step with the keyboard: 0.30 -> 0.35.
    probability.locator(".noUi-handle").focus()
    probability.locator(".noUi-handle").press("ArrowRight")
    readout = probability.locator(".widget-readout")
    page.wait_for_function("el => el.textContent.trim() === '0.35'", arg=readout.element_handle())
    page.wait_for_function(
        redrawn,
        arg=[image.element_handle(), first_plot, message.element_handle(), 1],
        timeout=WIDGET_S * 1000,
    )
    text = message.inner_text()
    assert "not running" not in text, (
        f"the fault lab panel says {text!r}: after Run All the lesson's last cell "
        "(stop_all()) has stopped the server the panel runs its trials against"
    )
    assert "0.35" in text, f"the panel did not run with the new probability: {text!r}"
    moved_plot = image.get_attribute("src")

    # ... and presses Run: the trials run again and the plot is drawn again.
    panel.get_by_role("button", name="Run").click()
    page.wait_for_function(
        redrawn,
        arg=[image.element_handle(), first_plot, message.element_handle(), 2],
        timeout=WIDGET_S * 1000,
    )
    assert "0.35" in message.inner_text() and "not running" not in message.inner_text()
    assert image.get_attribute("src") not in (first_plot, None)
    assert moved_plot != first_plot
    assert fault_lab_lesson.page.locator(ERROR_OUTPUTS).count() == 0
    shoot(page, panel, SCREENSHOTS / "06-fault-lab-after-run.png")
    # For the README: JupyterLab's menu and tab, the panel, down to the bottom of its plots.
    plots_bottom = image.bounding_box()
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
    lab.timings["fault lab: slider moved, Run pressed, plot redrawn"] = (
        time.perf_counter() - started
    )
