"""The workbook in a real browser: JupyterLab driven through Debian's Chromium.

Students and instructors use the workbook in JupyterLab, so this test does
what they do there. It starts JupyterLab from the venv (loopback only, a random
port and token, its own runtime, config, settings and data folders) on a
temporary copy of ``notebooks/``, and drives ``/usr/bin/chromium`` headless
through Playwright (the system browser: Playwright's own browser download does
not work offline). It

* opens every release notebook and checks what JupyterLab loaded (code cells,
  answer cells, locked test cells, nbgrader metadata) against the release file
  and ``autograder/exercises.py``, runs its setup cells, saves it from the UI
  and reads it back through the server's contents API;
* in notebook 01 types a correct answer into the first answer cell, runs it
  and its check (``approximate: True``), then a wrong one (the failure and its
  ``->`` hint);
* in notebook 01 checks that every hint (``<details>`` under a task) is
  collapsed when the notebook opens, and that a click on a summary opens it;
* in notebook 06 opens the first task's first hint with a click, types the
  first answer and runs it and its check (``approximate: True``);
* checks nbgrader's lab and server extensions are enabled and opens the
  formgrader on the course folder ``build/course``;
* checks the server and its kernels listen on loopback only, and that the
  browser never asked for anything but the server.

Screenshots go to ``build/screenshots/`` (``FAILED_<test>.png`` when a test
fails); ``tests/screenshots/01_atomic_backprop.png``, shown in the README, is a
copy of ``build/screenshots/01_atomic_backprop.png`` reduced to 256 colours, and
``tests/screenshots/01_hint_open.png`` one of ``build/screenshots/01_hint_open.png``.
Without ``/usr/bin/chromium`` the tests skip (``make test``); ``make
test-browser`` sets NINJA_BROWSER_REQUIRED=1 and they fail instead. Install the
browser with ``apt-get install -y --no-install-recommends chromium``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from autograder.exercises import answer_ids, items_of
from hub.course_hub import process_tree

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = REPO / "notebooks"
COURSE = REPO / "build" / "course"
SCREENSHOTS = REPO / "build" / "screenshots"
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
CHROMIUM = Path("/usr/bin/chromium")
# Headless, and off the network: without the background-networking flags
# Chromium keeps trying to reach Google's services, which this machine refuses.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
REQUIRED = os.environ.get("NINJA_BROWSER_REQUIRED") == "1"  # set by `make test-browser`
NBGRADER_LAB_PLUGINS = (
    "@jupyter/nbgrader:menu", "@jupyter/nbgrader:assignment-list", "@jupyter/nbgrader:course-list",
    "@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment", "@jupyter/nbgrader:validate-assignment",
)
NBGRADER_SERVER_EXTENSIONS = (
    "nbgrader.server_extensions.formgrader", "nbgrader.server_extensions.assignment_list",
    "nbgrader.server_extensions.course_list", "nbgrader.server_extensions.validate_assignment",
)
FIRST_NOTEBOOK = "01_atomic_backprop"
TRANSFORMER_NOTEBOOK = "06_transformer_block"
CORRECT_ANSWER = "dlogprobs = torch.zeros_like(logprobs)\ndlogprobs[range(n), Yb] = -1.0 / n"
TRANSFORMER_ANSWER = "dlogits = (F.softmax(logits, -1) - F.one_hot(Yb, V)) / (B * T)"
WRONG_ANSWER = "dlogprobs = torch.zeros_like(logprobs)"
STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
SETUP_TIMEOUT_MS = 120_000  # a cold kernel imports torch and reads the names data
CHECK_TIMEOUT_MS = 60_000

pytestmark = pytest.mark.browser


def _missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return (f"Debian's Chromium is not installed at {CHROMIUM} "
                "(apt-get install -y --no-install-recommends chromium)")
    try:
        import playwright.sync_api  # noqa: F401 (imported to see whether it is installed)
    except ImportError:
        return "the playwright package is not installed (pip install -r requirements.txt)"
    return None


def release_notebooks() -> list[str]:
    return sorted(path.stem for path in NOTEBOOKS_DIR.glob("*.ipynb"))


# ------------------------------------------------------------------ the server


class Lab:
    """A running JupyterLab: where it is, how to ask it things, where its files are."""

    def __init__(self, proc: subprocess.Popen, url: str, token: str, root: Path, log: Path):
        self.proc, self.url, self.token, self.root, self.log = proc, url, token, root, log
        self.background: list[threading.Thread] = []
        # The release as copied for the server (notebooks/ may be regenerated while the tests run).
        self.release = {path.stem: nbformat.read(path, as_version=4) for path in root.glob("*.ipynb")}
        self.extension_list: subprocess.Popen | None = None

    def api(self, path: str, method: str = "GET", body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                         headers={"Authorization": f"token {self.token}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
        return json.loads(text) if text else None

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def shutdown_sessions(self) -> None:
        """Shut down every session's kernel, in the background (the fixture waits before it stops the server)."""
        def shut_down(sessions):
            for session in sessions:
                self.api(f"/api/sessions/{session['id']}", method="DELETE")

        thread = threading.Thread(target=shut_down, args=(self.api("/api/sessions"),), daemon=True)
        thread.start()
        self.background.append(thread)


def _free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except OSError:
        return None


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (it shuts its kernels down), then SIGKILL what is left."""
    tree = process_tree(proc.pid)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    for pid, start in tree.items():  # kernels left behind, if the server could not stop them
        if pid != proc.pid and _start_time(pid) == start:
            os.kill(pid, signal.SIGKILL)


def _course_config(lab_root: Path, tmp: Path) -> str:
    """nbgrader settings for the formgrader: the release's config, with the course seen under the server root.

    nbgrader's formgrader refuses a course folder outside the server's root, so
    the root holds a link ``course`` -> build/course. The exchange (release and
    collect, unused here) goes to a temporary folder.
    """
    config = COURSE / "nbgrader_config.py"
    return (f"c = get_config()  # noqa: F821 (nbgrader defines get_config when it loads this file)\n"
            f"load_subconfig({str(config)!r})\n"
            f"c.CourseDirectory.root = {str(lab_root / 'course')!r}\n"
            f"c.Exchange.root = {str(tmp / 'exchange')!r}\n")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on 127.0.0.1 with a token, on a copy of notebooks/; always stopped afterwards."""
    problem = _missing_browser()
    if problem:
        if REQUIRED:
            pytest.fail(problem)
        pytest.skip(problem)
    if not (COURSE / "nbgrader_config.py").exists():
        subprocess.run([str(VENV_PYTHON), "-m", "autograder", "release"], cwd=REPO, check=True)

    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "root"
    root.mkdir()
    for notebook in NOTEBOOKS_DIR.glob("*.ipynb"):
        shutil.copy2(notebook, root / notebook.name)
    (root / "course").symlink_to(COURSE, target_is_directory=True)
    (tmp / "exchange").mkdir()
    (tmp / "nbgrader_config.py").write_text(_course_config(root, tmp))
    # User settings: never fetch news or look for updates (no toast, no request).
    settings = tmp / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))

    token, port = secrets.token_hex(24), _free_loopback_port()
    env = dict(os.environ,
               JUPYTER_TOKEN=token,
               JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
               JUPYTER_CONFIG_DIR=str(tmp / "config"),
               JUPYTER_DATA_DIR=str(tmp / "data"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"),
               IPYTHONDIR=str(tmp / "ipython"),
               PATH=f"{VENV_PYTHON.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("JUPYTER_PORT", None)
    command = [str(VENV_PYTHON), "-m", "jupyterlab", "--no-browser",
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
               f"--ServerApp.root_dir={root}",
               "--LabApp.extension_manager=readonly",  # the default one asks PyPI for versions
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--LabApp.expose_app_in_browser=True"]  # window.jupyterapp: which plugins are active
    if os.geteuid() == 0:
        command.append("--allow-root")
    log = tmp / "server.log"
    with log.open("w") as out:
        # cwd=tmp: the formgrader reads nbgrader_config.py from the server's folder.
        proc = subprocess.Popen(command, cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    server = Lab(proc, f"http://127.0.0.1:{port}", token, root, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"JupyterLab exited ({proc.returncode}):\n{server.log_tail()}"
            try:
                server.api("/api/status")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                assert time.monotonic() < deadline, f"JupyterLab did not answer in 60 s:\n{server.log_tail()}"
                time.sleep(0.3)
        # `jupyter server extension list` takes seconds (it imports every extension): start it now.
        listing = tmp / "server-extensions.txt"
        with listing.open("w") as out:
            server.extension_list = subprocess.Popen(
                [str(VENV_PYTHON), "-m", "jupyter", "server", "extension", "list"], cwd=tmp, env=env,
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        yield server
    finally:
        for thread in server.background:
            thread.join(timeout=30)
        if server.extension_list is not None and server.extension_list.poll() is None:
            os.killpg(server.extension_list.pid, signal.SIGKILL)
            server.extension_list.wait()
        _stop(proc)


@pytest.fixture(scope="module")
def browser(lab, tmp_path_factory):
    """Debian's Chromium, headless, with a fresh profile; every request it makes is recorded."""
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for stale in SCREENSHOTS.glob("FAILED_*.png"):  # from an earlier run
        stale.unlink()
    requests: list[str] = []
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=str(CHROMIUM),
            headless=True, args=CHROMIUM_ARGS, viewport=VIEWPORT)
        try:
            context.on("request", lambda request: requests.append(request.url))
            yield SimpleNamespace(context=context, requests=requests)
        finally:
            context.close()


@pytest.fixture(scope="module")
def lab_tab(lab, browser):
    """One browser tab with JupyterLab loaded, shared by the tests (a reload costs seconds)."""
    tab = browser.context.new_page()
    tab.set_default_timeout(30_000)
    try:
        open_lab(tab, lab)
        yield tab
    finally:
        tab.close()


@pytest.fixture
def page(lab, lab_tab, request):
    """JupyterLab in the browser; afterwards its documents are closed and their kernels shut down.

    When the test failed, a screenshot of the page goes to build/screenshots/FAILED_<test>.png and
    JupyterLab is reloaded on a fresh workspace for the next test.
    """
    failed_before = request.session.testsfailed
    try:
        yield lab_tab
    finally:
        if request.session.testsfailed > failed_before:
            name = re.sub(r"[^\w.-]+", "_", request.node.name)
            lab_tab.screenshot(path=str(SCREENSHOTS / f"FAILED_{name}.png"))
            open_lab(lab_tab, lab)
        else:
            close_documents(lab_tab)
        lab.shutdown_sessions()


# ------------------------------------------------------------------ in the page


def open_lab(page, lab: Lab) -> None:
    """Load JupyterLab on a fresh workspace."""
    page.goto(f"{lab.url}/lab?reset&token={lab.token}")
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell", timeout=60_000)
    page.locator("#jp-main-dock-panel").wait_for()
    page.locator(".jp-DirListing-item").first.wait_for()


def close_documents(page) -> None:
    """Close every tab of the main area, unsaved changes and all (tests save what they check first)."""
    page.evaluate("""async () => { await window.jupyterapp.restored;
                                   for (const w of Array.from(window.jupyterapp.shell.widgets('main'))) w.dispose(); }""")


def open_notebook(page, notebook: str):
    """Open a notebook from the file browser, close the browser, wait until the kernel is idle. Returns the cells."""
    if not page.locator("#filebrowser").is_visible():
        page.locator(".jp-SideBar.jp-mod-left li[data-id='filebrowser']").click()
    page.locator(".jp-DirListing-item", has=page.locator(".jp-DirListing-itemText", has_text=re.compile(
        rf"^{re.escape(notebook)}\.ipynb$"))).dblclick()
    page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for()
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=SETUP_TIMEOUT_MS)
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=SETUP_TIMEOUT_MS)
    page.evaluate("() => window.jupyterapp.shell.collapseLeft()")  # the notebook gets the whole width
    return page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell")


def wait_for_cells(page, expected: int) -> dict:
    """How many cells (and code cells) the notebook shows, once it shows ``expected`` or stops adding any."""
    count = """() => ({cells: document.querySelectorAll('.jp-NotebookPanel .jp-Notebook .jp-Cell').length,
                      code: document.querySelectorAll('.jp-NotebookPanel .jp-Notebook .jp-CodeCell').length})"""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:  # JupyterLab attaches the cells of a long notebook a batch at a time
        page.wait_for_function(f"() => ({count})().cells >= {expected}", timeout=30_000)
    except PlaywrightTimeout:
        pass
    return page.evaluate(count)


def loaded_cells(page) -> list[dict]:
    """The cells of the notebook JupyterLab has open, as its notebook model holds them."""
    return page.evaluate("""() => {
        const panel = window.jupyterapp.shell.currentWidget;
        return panel.content.widgets.map(cell => ({
            cell_type: cell.model.type,
            source: cell.model.sharedModel.getSource(),
            nbgrader: cell.model.getMetadata('nbgrader') || null,
        }));
    }""")


def prompt_has_count(cell) -> bool:
    return re.fullmatch(r"\[\d+\]:", cell.locator(".jp-InputPrompt").text_content().strip()) is not None


def run_setup(page, cells, first_answer: int, setup: list[int]) -> None:
    """Select the first answer cell and use Run > Run All Above Selected Cell; wait for every setup cell."""
    cells.nth(first_answer).locator(".jp-InputPrompt").click()
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Above Selected Cell").click()
    deadline = time.monotonic() + SETUP_TIMEOUT_MS / 1000
    while not all(prompt_has_count(cells.nth(i)) for i in setup):
        prompts = [cells.nth(i).locator(".jp-InputPrompt").text_content().strip() for i in setup]
        assert time.monotonic() < deadline, f"the setup cells did not finish: prompts {prompts}"
        page.wait_for_timeout(250)
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=SETUP_TIMEOUT_MS)


def answer_and_check(page, answer, check, old: str, new: str, verdict: str):
    """Replace the answer cell's last lines (``old``) with ``new``, run it and its check, and wait for the
    check's output that contains ``verdict``; that output."""
    replace_last_lines(page, answer, old.count("\n") + 1, new)
    page.keyboard.press("Shift+Enter")  # runs the answer, selects its check
    page.keyboard.press("Shift+Enter")  # runs the check
    shown = check.locator(".jp-OutputArea-output").filter(has_text=verdict)
    shown.wait_for(timeout=CHECK_TIMEOUT_MS)
    return shown


def replace_last_lines(page, cell, count: int, text: str) -> None:
    """Type ``text`` over the last ``count`` lines of a cell's editor, as a student would."""
    cell.locator(".cm-content").click()
    page.keyboard.press("Control+End")
    for _ in range(count - 1):
        page.keyboard.press("Shift+ArrowUp")
    page.keyboard.press("Shift+Home")
    page.keyboard.type(text)


def screenshot(page, cell, name: str, block: str = "center") -> Path:
    """build/screenshots/<name>.png of the page, scrolled to ``cell``."""
    cell.evaluate("(element, block) => element.scrollIntoView({block})", block)
    page.wait_for_timeout(300)  # let the scroll and the typeset maths settle
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def save_and_read_back(page, lab: Lab, notebook: str) -> nbformat.NotebookNode:
    """Save from the UI (Ctrl+S) and read the file back through the contents API."""
    page.keyboard.press("Control+s")
    page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty")
    model = lab.api(f"/api/contents/{notebook}.ipynb?content=1&type=notebook")
    return nbformat.from_dict(model["content"])


# ------------------------------------------------------------------ checks


def nbgrader_of(cell) -> dict:
    return dict(cell.get("metadata", {}).get("nbgrader", {}))


def assert_structure(release, cells: list[dict], notebook: str) -> None:
    """What JupyterLab loaded is the release: cells, sources, nbgrader metadata; answers and tests as registered."""
    assert [c["cell_type"] for c in cells] == [c.cell_type for c in release.cells]
    for index, (loaded, cell) in enumerate(zip(cells, release.cells)):
        assert loaded["source"] == cell.source, f"cell {index}: the source JupyterLab shows differs"
        assert (loaded["nbgrader"] or {}) == nbgrader_of(cell), f"cell {index}: nbgrader metadata differs"
    answers = [c for c in cells if (c["nbgrader"] or {}).get("solution")]
    tests = [c for c in cells if (c["nbgrader"] or {}).get("grade") and c["cell_type"] == "code"]
    assert [c["nbgrader"]["grade_id"] for c in answers] == list(answer_ids(notebook))
    for cell in answers:
        assert cell["source"].startswith(f"#| answer: {cell['nbgrader']['grade_id']}\n")
        assert all(line in cell["source"] for line in STUB.splitlines()), cell["source"]
        assert not cell["nbgrader"]["locked"]
    assert sorted(c["nbgrader"]["grade_id"] for c in tests) == sorted(item.grade_id for item in items_of(notebook))
    assert all(c["nbgrader"]["locked"] and c["nbgrader"]["points"] > 0 for c in tests)


def assert_saved_intact(saved, release, edited: dict[int, str] | None = None) -> None:
    """The file JupyterLab saved keeps every cell, its nbgrader metadata and (but for ``edited``) its source."""
    edited = edited or {}
    assert len(saved.cells) == len(release.cells)
    assert saved.metadata.get("kernelspec") == release.metadata.get("kernelspec")
    for index, (cell, original) in enumerate(zip(saved.cells, release.cells)):
        assert cell.cell_type == original.cell_type
        assert nbgrader_of(cell) == nbgrader_of(original), f"cell {index}: nbgrader metadata changed on save"
        assert cell.source == edited.get(index, original.source), f"cell {index}: source changed on save"


def setup_cells(release) -> tuple[int, list[int]]:
    """(the index of the first answer cell, the indices of the code cells above it)."""
    first = next(i for i, c in enumerate(release.cells) if nbgrader_of(c).get("solution"))
    return first, [i for i, c in enumerate(release.cells[:first]) if c.cell_type == "code"]


def assert_no_errors(saved, indices: list[int]) -> None:
    for index in indices:
        cell = saved.cells[index]
        assert cell.execution_count, f"cell {index} did not run"
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, f"cell {index} raised {errors[0].ename}: {errors[0].evalue}"


# ------------------------------------------------------------------ the tests


def test_release_notebooks_exist():
    assert FIRST_NOTEBOOK in release_notebooks(), f"{NOTEBOOKS_DIR} has no {FIRST_NOTEBOOK}.ipynb: run make release"


def test_hints_are_collapsed_until_a_click_opens_one(lab, page):
    """Notebook 01 opens with every hint collapsed; a click on a summary shows that hint's body.

    It runs before the tests that type answers into notebook 01, so it sees the release as a student does.
    """
    release = lab.release[FIRST_NOTEBOOK]
    with_hints = {i: c.source.count("<details>") for i, c in enumerate(release.cells)
                  if c.cell_type == "markdown" and "<details>" in c.source}
    assert len(with_hints) >= 20, with_hints
    cells = open_notebook(page, FIRST_NOTEBOOK)
    wait_for_cells(page, len(release.cells))
    state = """details => details.map(d => ({open: d.open, attribute: d.hasAttribute('open'),
                                              summary: d.querySelector('summary').textContent}))"""
    for index, count in with_hints.items():
        cell = cells.nth(index)
        cell.scroll_into_view_if_needed()
        details = cell.locator(".jp-RenderedMarkdown details")
        details.nth(count - 1).wait_for(state="attached")
        shown = details.evaluate_all(state)
        summaries = re.findall(r"<summary>(Hint \d+: .*?)</summary>", release.cells[index].source)
        assert [d["summary"] for d in shown] == summaries
        assert not any(d["open"] or d["attribute"] for d in shown), (index, shown)
        assert not any(details.nth(k).locator("p").first.is_visible() for k in range(count)), index

    first = min(with_hints)  # the task above the first answer, with its hints
    details = cells.nth(first).locator(".jp-RenderedMarkdown details")
    for k in (0, 1):
        details.nth(k).locator("summary").click()
        details.nth(k).locator("p").first.wait_for(state="visible")
        assert details.nth(k).evaluate("d => d.open && d.hasAttribute('open')")
    assert not details.nth(2).evaluate("d => d.open")
    assert not details.nth(2).locator("p").first.is_visible()
    details.nth(1).locator("mjx-container").first.wait_for()  # the maths inside a hint is typeset too
    screenshot(page, cells.nth(first), f"{FIRST_NOTEBOOK.split('_')[0]}_hint_open", block="start")


@pytest.mark.parametrize("notebook", release_notebooks())
def test_notebook_opens_and_runs_its_setup(lab, page, notebook):
    """Every release notebook loads as released, runs its setup cells and saves with its metadata intact."""
    assert notebook in lab.release, f"{notebook}.ipynb appeared in notebooks/ after the server started"
    release = lab.release[notebook]
    cells = open_notebook(page, notebook)
    code = sum(c.cell_type == "code" for c in release.cells)
    rendered = wait_for_cells(page, len(release.cells))
    assert rendered == {"cells": len(release.cells), "code": code}
    assert_structure(release, loaded_cells(page), notebook)

    first_answer, setup = setup_cells(release)
    run_setup(page, cells, first_answer, setup)
    if notebook == FIRST_NOTEBOOK:
        check_first_answer(page, lab, cells, release, first_answer)
        return
    if notebook == TRANSFORMER_NOTEBOOK:
        check_a_hint_and_an_answer(page, lab, cells, release, first_answer)
        return
    screenshot(page, cells.nth(setup[-1]), notebook, block="start")  # the last setup cell and its output
    saved = save_and_read_back(page, lab, notebook)
    assert_saved_intact(saved, release)
    assert_no_errors(saved, setup)


def check_first_answer(page, lab, cells, release, first_answer: int) -> None:
    """Notebook 01: a correct answer passes its check, a wrong one fails with a hint."""
    answer, check = cells.nth(first_answer), cells.nth(first_answer + 1)
    header = release.cells[first_answer].source[: -len(STUB)]
    assert "assert cmp(" in release.cells[first_answer + 1].source

    passed = answer_and_check(page, answer, check, STUB, CORRECT_ANSWER, "approximate: True")
    assert re.search(r"logprobs\s+\| exact: True\s+\| approximate: True", passed.inner_text())
    assert check.locator(".jp-OutputArea-output", has_text="Error").count() == 0
    screenshot(page, answer, FIRST_NOTEBOOK)

    answer_and_check(page, answer, check, CORRECT_ANSWER, WRONG_ANSWER, "approximate: False")
    output = check.locator(".jp-OutputArea").inner_text()
    assert re.search(r"-> values differ: maxdiff \S+ is above the tolerance", output), output
    assert "AssertionError" in output, output
    screenshot(page, answer, f"{FIRST_NOTEBOOK}_wrong_answer")

    saved = save_and_read_back(page, lab, FIRST_NOTEBOOK)
    assert_saved_intact(saved, release, edited={first_answer: header + WRONG_ANSWER})
    assert saved.cells[first_answer + 1].outputs[-1].output_type == "error"
    assert_no_errors(saved, setup_cells(release)[1])


def check_a_hint_and_an_answer(page, lab, cells, release, first_answer: int) -> None:
    """Notebook 06: the first task's first hint opens with a click; the first answer passes its check."""
    task = cells.nth(first_answer - 1)
    assert "<summary>Hint 1:" in release.cells[first_answer - 1].source
    details = task.locator(".jp-RenderedMarkdown details")
    assert not details.first.evaluate("d => d.open")
    details.first.locator("summary").click()
    details.first.locator("p").first.wait_for(state="visible")
    assert details.first.evaluate("d => d.open") and not details.nth(1).evaluate("d => d.open")
    screenshot(page, task, f"{TRANSFORMER_NOTEBOOK.split('_')[0]}_hint_open", block="start")

    answer, check = cells.nth(first_answer), cells.nth(first_answer + 1)
    header = release.cells[first_answer].source[: -len(STUB)]
    assert release.cells[first_answer + 1].source.startswith('assert cmp("logits"')
    passed = answer_and_check(page, answer, check, STUB, TRANSFORMER_ANSWER, "approximate: True")
    assert re.search(r"logits\s+\| exact: \w+\s+\| approximate: True .*\| shape \(24, 16, 27\)", passed.inner_text())
    assert check.locator(".jp-OutputArea-output", has_text="Error").count() == 0
    screenshot(page, answer, TRANSFORMER_NOTEBOOK)

    saved = save_and_read_back(page, lab, TRANSFORMER_NOTEBOOK)
    assert_saved_intact(saved, release, edited={first_answer: header + TRANSFORMER_ANSWER})
    assert saved.cells[first_answer + 1].outputs and saved.cells[first_answer + 1].outputs[-1].output_type != "error"
    assert_no_errors(saved, setup_cells(release)[1])


def test_nbgrader_extensions_enabled(lab, page):
    """nbgrader's lab extension is enabled and its plugins active; its server extensions are enabled and loaded."""
    extensions = {e["name"]: e for e in lab.api("/lab/api/extensions")}
    nbgrader = extensions.get("jupyter-nbgrader") or extensions.get("@jupyter/nbgrader")
    assert nbgrader, f"no nbgrader lab extension among {sorted(extensions)}"
    assert nbgrader["enabled"] and nbgrader["installed"] and nbgrader["status"] == "ok"

    page.get_by_role("menuitem", name="Nbgrader", exact=True).wait_for()
    active = page.evaluate("ids => ids.map(id => window.jupyterapp.isPluginActivated(id))",
                           list(NBGRADER_LAB_PLUGINS))
    assert dict(zip(NBGRADER_LAB_PLUGINS, active)) == dict.fromkeys(NBGRADER_LAB_PLUGINS, True)
    commands = ["nbgrader:open-assignment-list", "nbgrader:open-formgrader", "nbgrader:open-create-assignment"]
    assert page.evaluate("cs => cs.map(c => window.jupyterapp.commands.hasCommand(c))", commands) == [True] * 3

    assert lab.extension_list.wait(timeout=120) == 0
    text = re.sub(r"\x1b\[[0-9;]*m", "", (lab.root.parent / "server-extensions.txt").read_text())
    log = lab.log.read_text()
    for name in NBGRADER_SERVER_EXTENSIONS:
        assert re.search(rf"^\s*{re.escape(name)} enabled\s*$", text, re.M), text
        assert f"{name} | extension was successfully loaded" in log


def test_formgrader_renders(lab, page):
    """Nbgrader > Formgrader opens in JupyterLab and lists the course's assignment from build/course."""
    page.get_by_role("menuitem", name="Nbgrader", exact=True).click()
    page.get_by_role("menuitem", name="Formgrader", exact=True).click()
    frame = page.frame_locator("#formgrader-iframe iframe")
    frame.get_by_role("heading", name="Manage Assignments").wait_for()
    row = frame.locator("table tbody tr", has_text="backprop_ninja")
    row.wait_for()
    assert "draft" in row.inner_text() or "released" in row.inner_text()
    body = frame.locator("body").inner_text()
    assert "not set up correctly" not in body and "does not exist" not in body, body
    page.wait_for_timeout(300)
    page.screenshot(path=str(SCREENSHOTS / "formgrader.png"))


def _listening(pids: set[int]) -> list[tuple[str, int]]:
    """(address, port) of every listening TCP socket (and bound UDP socket) the processes own."""
    inodes = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = []
    for table, listen_state in (("tcp", "0A"), ("tcp6", "0A"), ("udp", "07"), ("udp6", "07")):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if inode in inodes and state == listen_state:
                address, port = local.split(":")
                raw = bytes.fromhex(address)
                if sys.byteorder == "little":  # the kernel prints each 32-bit word in host order
                    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                found.append((str(ipaddress.ip_address(raw)), int(port, 16)))
    return found


def _is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or bool(mapped and mapped.is_loopback)


def test_only_loopback_listens(lab, browser):
    """The server and a kernel it starts listen on loopback only; the browser asked nothing of any other host."""
    kernel = lab.api("/api/kernels", method="POST", body={"name": "python3"})
    try:
        deadline = time.monotonic() + 60
        while True:
            sockets = _listening(set(process_tree(lab.proc.pid)))
            if len(sockets) >= 6 or time.monotonic() > deadline:  # the server and the kernel's five ports
                break
            time.sleep(0.5)
    finally:
        lab.api(f"/api/kernels/{kernel['id']}", method="DELETE")
    port = int(lab.url.rsplit(":", 1)[1])
    assert ("127.0.0.1", port) in sockets
    assert len(sockets) >= 6, sockets
    assert [s for s in sockets if not _is_loopback(s[0])] == []
    elsewhere = [url for url in browser.requests if not url.startswith((lab.url + "/", "data:", "blob:"))]
    assert elsewhere == []


# ------------------------------------------------------------------ the instructor's class report

def test_class_report_renders_without_console_errors(tmp_path, browser):
    """OUT/report.html, opened from a file: no console errors, no request outside the page, every figure drawn.

    The page is rendered from the synthetic class of ``tests/test_class_report.py``
    (no grading run); the screenshot goes to build/screenshots/report.png
    (``tests/screenshots/report.png`` is a copy of one, reduced to 256 colours).
    """
    from autograder.checking import class_mistakes
    from autograder.grading import class_report
    from autograder.grading.export import StudentGrade
    from tests.test_class_report import planted_results

    results = planted_results()
    grades = [StudentGrade(r.student, dict(r.scores), r.total()) for r in results]
    grades[0] = StudentGrade("ada", grades[0].scores, grades[0].raw, 7.0, 90000.0, "2026-12-02 13:00:00")
    view = class_report.ClassView(grades, results, class_mistakes.mistake_rows(results))
    path = tmp_path / "report.html"
    path.write_text(class_report.render(tmp_path, view, results, 42.5), encoding="utf-8")

    console, errors, requests = [], [], []
    page = browser.context.new_page()  # the module's Chromium: a second Playwright may not start beside it
    try:
        page.set_viewport_size(VIEWPORT)
        page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("request", lambda request: requests.append(request.url))
        page.goto(path.as_uri(), wait_until="load")
        drawn = page.evaluate("() => Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
        headings = page.locator("h2").all_inner_texts()
        teach_rows = page.locator("table").nth(0).locator("tr").count()
        page.screenshot(path=str(SCREENSHOTS / "report.png"), full_page=True)
    finally:
        page.close()
    assert [line for line in console if line.startswith(("error", "warning"))] == [] and errors == []
    assert [url for url in requests if not url.startswith(("file://", "data:"))] == []
    assert drawn == [True, True, True]
    assert headings[:3] == ["Scores", "What to teach again", "Failed items by diagnosis"]
    assert teach_rows == 3  # the header, then shape.missing_dim (3 students) and sign (1)
