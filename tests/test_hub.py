"""A course on a real JupyterHub, end to end, in Chromium: release, fetch, submit, collect, grade, feedback.

``hub.course_hub.CourseHub`` starts JupyterHub 6 on free loopback ports with
configurable-http-proxy, an instructor and two students (real local users
logged in through PAM when the test runs as root, removed at its end; a shared
password where it cannot make users) and nbgrader's exchange. Then, each user
in a browser context of their own:

1. all three log in; the instructor's JupyterLab has nbgrader's instructor
   tools, the students' only the Assignments panel and validation;
2. the instructor's course was generated (``backprop-ninja release --course``,
   run as the instructor); the instructor releases it from the formgrader;
3. both students fetch it from JupyterLab's Assignments panel;
4. each answers cells of notebook 01 (the master's code written into the
   fetched notebook, as the student): the first student the first nine answer
   cells right, the second the same but ``db2`` with an extra dimension
   (``keepdim=True``), and opens the notebook from the panel; both submit from
   the panel;
5. the instructor runs ``nbgrader collect`` in a JupyterLab terminal, then, in
   the same terminal, what the README gives: ``backprop-ninja grade --course .``
   and ``nbgrader release_feedback``;
6. each student fetches the feedback from the panel and opens it: the score it
   shows is asserted, and the second student's page names the mistake;
7. neither student can read the other's submission or feedback (as the Unix users);
8. stopping the hub leaves no process, user or folder behind.

Screenshots: ``build/screenshots/hub_*.png`` (``hub_FAILED_<user>.png`` when the
round trip fails); the hub's log: ``build/hub.log``. Without Chromium, npm's
proxy or the hub's Python environment the tests skip and say why (``make
test``); ``make test-hub`` sets NINJA_HUB_REQUIRED=1 and they fail instead.
"""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from hub.course_hub import COURSE_ID, CourseHub, describe, missing_tools, process_alive, processes_of, user_exists
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, VIEWPORT

pytestmark = [pytest.mark.hub, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
SOLUTIONS = REPO / "solutions"
SCREENSHOTS = REPO / "build" / "screenshots"
REQUIRED = os.environ.get("NINJA_HUB_REQUIRED") == "1"  # set by `make test-hub`
NOTEBOOK = "01_atomic_backprop"
STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
# The answer cells both students fill, in the notebook's order: loss -> logits (dlogprobs ... db2).
ANSWERED = ("ex1_line_loss", "ex1_line_logprobs", "ex1_line_probs", "ex1_line_counts_sum_inv", "ex1_line_counts_sum",
            "ex1_line_counts", "ex1_line_norm_logits", "ex1_line_logit_maxes", "ex1_line_logits")
# The second student's mistake: b2's gradient summed with keepdim=True, (1, 27) where (27,) is right.
MISTAKE_CELL, MISTAKE_ITEM = "ex1_line_logits", "ex1_db2"
RIGHT_DB2, WRONG_DB2 = "db2 = dlogits.sum(0)", "db2 = dlogits.sum(0, keepdim=True)"
DIAGNOSIS = "an extra dimension of size 1"  # shape.extra_dim's message, as the feedback page gives it
SCORE_LINE = "This notebook: "  # the feedback page's line "This notebook: <got> / <points>"
GRADE = f"backprop-ninja grade --course . && nbgrader release_feedback {COURSE_ID}"  # the README's two steps
NBGRADER_PLUGINS = ("@jupyter/nbgrader:assignment-list", "@jupyter/nbgrader:validate-assignment",  # everyone
                    "@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment",  # the instructor only
                    "@jupyter/nbgrader:course-list")
LOGIN_TIMEOUT_MS = 120_000  # the hub spawns the user's server on the first login
ACTION_TIMEOUT_MS = 60_000


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return f"Debian's Chromium is not installed at {CHROMIUM} (apt-get install -y --no-install-recommends chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -r requirements.txt)"
    return missing_tools() or _closed_to_users()


def _closed_to_users() -> str | None:
    """As root the hub's users are real local users, who run build/hub-venv inside this checkout: every folder
    above it must let other users through (a checkout under `mktemp -d`, mode 0700, does not)."""
    if os.geteuid() != 0:
        return None  # the hub's users are this user
    for folder in (REPO, *REPO.parents):
        if not folder.stat().st_mode & stat.S_IXOTH:
            return (f"the hub's local users cannot reach {REPO / 'build' / 'hub-venv'}: {folder} is closed to other "
                    f"users (chmod o+x {folder}, or clone the project where others may pass)")
    return None


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def course_hub():
    """The hub with its users and the instructor's course; stopped (and checked) by the last test, or here."""
    problem = _missing()
    if problem:
        if REQUIRED:
            pytest.fail(problem)
        pytest.skip(problem)
    started = time.monotonic()
    hub = CourseHub(environment={"NINJA_EX4_STEPS": "300"},  # grading's short training schedule
                    keep_log=REPO / "build" / "hub.log")
    try:
        hub.start()
        hub.prepare_course()
        hub.timings = {"start": time.monotonic() - started}
        hub.results = SimpleNamespace()
        yield hub
    finally:
        hub.stop()


@pytest.fixture(scope="module")
def chromium(course_hub):
    """Debian's Chromium, headless and offline (test_browser's options); every request is recorded."""
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for stale in SCREENSHOTS.glob("hub_*.png"):
        stale.unlink()
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield SimpleNamespace(browser=browser, requests=requests)
        finally:
            browser.close()


def new_page(chromium, user: str):
    """A tab in a browser context of the user's own (their own cookies, like their own browser)."""
    context = chromium.browser.new_context(viewport=VIEWPORT)
    context.on("request", lambda request: chromium.requests.append(request.url))
    page = context.new_page()
    page.set_default_timeout(ACTION_TIMEOUT_MS)
    return page


# ------------------------------------------------------------------ in the browser


def shot(page, name: str) -> Path:
    page.wait_for_timeout(300)  # let the last change render
    path = SCREENSHOTS / f"hub_{name}.png"
    page.screenshot(path=str(path))
    return path


def log_in(page, hub: CourseHub, name: str) -> None:
    """The hub's login page: name, password, "Sign in" (the hub then starts the user's server)."""
    page.goto(f"{hub.url}/hub/login")
    page.locator("#username_input").fill(name)
    page.locator("#password_input").fill(hub.users[name].password)
    page.locator("#login_submit").click()


def wait_for_lab(page, name: str) -> None:
    """The user's JupyterLab, once the hub has started their server and sent the browser to it."""
    page.wait_for_url(re.compile(rf"/user/{re.escape(name)}/lab"), timeout=LOGIN_TIMEOUT_MS)
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell", timeout=LOGIN_TIMEOUT_MS)
    page.evaluate("() => window.jupyterapp.restored")
    page.locator(".jp-DirListing-content").wait_for()


def open_assignments(page) -> None:
    """Nbgrader > Assignment List: the Assignments panel."""
    page.get_by_role("menuitem", name="Nbgrader", exact=True).click()
    page.get_by_role("menuitem", name="Assignment List", exact=True).click()
    page.locator("#assignments").wait_for()
    page.evaluate("() => window.jupyterapp.shell.collapseLeft()")


def assignment_row(page, section: str):
    """The course's row in one section of the panel: released, fetched or submitted."""
    return page.locator(f"#{section}_assignments_list > .list_item", has_text=COURSE_ID)


def fetch_assignment(page) -> None:
    released = assignment_row(page, "released")
    released.get_by_role("button", name="Fetch", exact=True).click()
    assignment_row(page, "fetched").get_by_role("button", name="Submit", exact=True).wait_for()


def submit_assignment(page) -> str:
    """Submit from the panel; returns the submission's timestamp as the panel shows it."""
    assignment_row(page, "fetched").get_by_role("button", name="Submit", exact=True).click()
    submitted = assignment_row(page, "submitted")
    submitted.get_by_role("button", name="Fetch Feedback", exact=True).wait_for()
    stamp = submitted.locator(".nested_list_item").first.inner_text()
    match = re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \w+", stamp)
    assert match, f"no timestamp in the submitted row: {stamp!r}"
    return match.group(0)


NOTEBOOK_PANEL = """path => Array.from(window.jupyterapp.shell.widgets('main'))
    .find(w => w.context && w.context.path.endsWith(path) && w.content && w.content.widgets)"""


def open_from_panel(page, notebook: str) -> None:
    """Expand the fetched assignment and click one of its notebooks; wait until it is loaded and its kernel idle."""
    fetched = assignment_row(page, "fetched")
    fetched.locator("a.assignment-notebooks-link").click()
    fetched.get_by_role("link", name=notebook, exact=True).click()
    page.wait_for_function(f"""path => {{ const panel = ({NOTEBOOK_PANEL})(path);
        return panel && panel.context.isReady && panel.content.widgets.length > 1; }}""", arg=f"{notebook}.ipynb")
    page.locator(".jp-NotebookPanel:visible .jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(
        timeout=LOGIN_TIMEOUT_MS)


def show_cell(page, notebook: str, starts_with: str) -> None:
    """Select the notebook's cell whose source starts with ``starts_with`` and scroll it to the middle."""
    found = page.evaluate(f"""async ([path, prefix]) => {{
        const notebook = ({NOTEBOOK_PANEL})(path).content;
        const index = notebook.widgets.findIndex(cell => cell.model.sharedModel.getSource().startsWith(prefix));
        if (index < 0) return false;
        notebook.activeCellIndex = index;
        await notebook.scrollToItem(index, 'center');
        return true;
    }}""", [f"{notebook}.ipynb", starts_with])
    assert found, f"no cell of {notebook} starts with {starts_with!r}"
    page.wait_for_timeout(500)  # the windowed notebook renders the cells around it


def fetch_feedback(page, notebook: str):
    """Fetch Feedback, follow "(view feedback)", open the notebook's page; returns the page's frame."""
    page.locator("#refresh_assignments_list").click()
    submitted = assignment_row(page, "submitted")
    submitted.get_by_text("(feedback available to fetch)").wait_for()
    submitted.get_by_role("button", name="Fetch Feedback", exact=True).click()
    view = assignment_row(page, "submitted").get_by_text("(view feedback)")
    view.wait_for()
    view.click()  # the file browser goes to ~/backprop_ninja/feedback/<timestamp>/
    page.locator(".jp-DirListing-item", has=page.locator(".jp-DirListing-itemText", has_text=f"{notebook}.html")).dblclick()
    frame = page.frame_locator(".jp-HTMLViewer:visible iframe")
    frame.locator("body").get_by_text(SCORE_LINE).first.wait_for()
    page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
    return frame


def run_in_terminal(page, hub: CourseHub, name: str, command: str, label: str) -> str:
    """Open a terminal from JupyterLab's launcher and type ``command`` in it, as the user would; returns its output.

    The output also goes to ``~/.ninja-<label>.log``, and the exit status to ``~/.ninja-<label>.done``,
    which the test waits for (the terminal's screen is a canvas).
    """
    home = hub.users[name].home
    done, log = home / f".ninja-{label}.done", home / f".ninja-{label}.log"
    page.evaluate("() => window.jupyterapp.commands.execute('launcher:create')")
    page.locator(".jp-LauncherCard:visible", has_text="Terminal").click()
    page.locator(".jp-Terminal:visible .xterm-screen").click()
    page.keyboard.type(f"( {command} ) 2>&1 | tee ~/{log.name}; echo ${{PIPESTATUS[0]}} > ~/{done.name}")
    page.keyboard.press("Enter")
    deadline = time.monotonic() + 300
    while not done.exists() or not done.read_text().strip():
        assert time.monotonic() < deadline, f"{command!r} did not finish in the terminal in 300 s"
        page.wait_for_timeout(250)
    output = log.read_text()
    assert done.read_text().strip() == "0", f"{command!r} exited {done.read_text().strip()}:\n{output}"
    return output


# ------------------------------------------------------------------ on disk


def master_answers() -> dict[str, str]:
    """{answer cell id: the master's code between its solution markers} for notebook 01."""
    master = nbformat.read(SOLUTIONS / f"{NOTEBOOK}.ipynb", as_version=4)
    answers = {}
    for cell in master.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        match = re.search(r"### BEGIN SOLUTION\n(.*?)\n\s*### END SOLUTION", cell.source, re.S)
        if cell.metadata.get("nbgrader", {}).get("solution") and match:
            answers[grade_id] = match.group(1)
    return answers


def answer_on_disk(hub: CourseHub, student: str, answers: dict[str, str]) -> Path:
    """Write ``answers`` into the student's fetched notebook 01 (in place of each cell's stub), as the student."""
    user = hub.users[student]
    path = user.home / COURSE_ID / f"{NOTEBOOK}.ipynb"
    nb = nbformat.read(path, as_version=4)
    done = set()
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            assert STUB in cell.source, f"{grade_id}: the fetched cell has no stub"
            cell.source = cell.source.replace(STUB, answers[grade_id])
            done.add(grade_id)
    assert done == set(answers), f"answer cells not found: {set(answers) - done}"
    hub.write_as(user, str(path.relative_to(user.home)), nbformat.writes(nb))
    return path


def points_of(notebook, answer_cells) -> tuple[float, float]:
    """(points of the graded cells that check ``answer_cells``, points of the notebook)."""
    earned, total, current = 0.0, 0.0, None
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            current = meta["grade_id"]
        elif meta.get("grade") and cell.cell_type == "code":
            total += meta["points"]
            earned += meta["points"] if current in answer_cells else 0.0
    return earned, total


def as_student(hub: CourseHub, student: str, *argv: str) -> subprocess.CompletedProcess:
    return hub.as_user(student, list(argv), check=False)


# ------------------------------------------------------------------ the tests


def test_release_fetch_submit_grade_feedback(course_hub, chromium):
    """The whole round trip, as the instructor and two students would do it on the hub."""
    pages = {}
    try:
        round_trip(course_hub, chromium, pages)
    except BaseException:
        for name, page in pages.items():  # what each of them saw when it failed
            page.screenshot(path=str(SCREENSHOTS / f"hub_FAILED_{name}.png"))
        raise


def round_trip(hub: CourseHub, chromium, pages: dict) -> None:
    t0 = time.monotonic()
    instructor = hub.instructor.name
    student1, student2 = (u.name for u in hub.students)

    # Everyone logs in (the hub starts the three servers side by side).
    pages.update({name: new_page(chromium, name) for name in (instructor, student1, student2)})
    for name, page in pages.items():
        log_in(page, hub, name)
    for name, page in pages.items():
        wait_for_lab(page, name)
    hub.timings["log in, three servers"] = time.monotonic() - t0
    # The instructor has nbgrader's instructor tools; students only the Assignments panel and validation.
    for name, page in pages.items():
        active = page.evaluate("ids => ids.map(id => window.jupyterapp.isPluginActivated(id))", list(NBGRADER_PLUGINS))
        is_instructor = name == instructor
        assert active == [True, True, is_instructor, is_instructor, is_instructor], (name, active)
        formgrader = page.request.get(f"{hub.url}/user/{name}/formgrader")
        assert (formgrader.status == 200) == is_instructor, (name, formgrader.status)

    # 1. The instructor releases the assignment from the formgrader, opened in a tab of its own
    #    (JupyterHub >= 4.1 forbids the iframe that JupyterLab's Nbgrader > Formgrader shows it in).
    teacher = pages[instructor]
    teacher.goto(f"{hub.url}/user/{instructor}/formgrader")
    row = teacher.locator("table tbody tr", has_text=COURSE_ID)
    row.locator("td.status", has_text="draft").wait_for()
    row.locator("td.release a").click()
    teacher.locator("#success-modal").get_by_text(f"Successfully released '{COURSE_ID}'.").wait_for()
    teacher.locator("#success-modal").get_by_role("button", name="Close").first.click()
    row.locator("td.status", has_text="released").wait_for()
    shot(teacher, "1_instructor_released")
    outbound = hub.exchange / COURSE_ID / "outbound" / COURSE_ID
    assert sorted(p.name for p in outbound.glob("*.ipynb")) == sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))

    # 2. Both students fetch it from the Assignments panel.
    for student in (student1, student2):
        page = pages[student]
        open_assignments(page)
        assignment_row(page, "released").get_by_role("button", name="Fetch", exact=True).wait_for()
        if student == student1:
            shot(page, "2_panel_released")
        fetch_assignment(page)
        assert (hub.users[student].home / COURSE_ID / f"{NOTEBOOK}.ipynb").exists()
    shot(pages[student1], "3_panel_fetched")

    # 3. They answer: student 1 nine cells right, student 2 the same with db2's keepdim mistake; both submit.
    answers = {cell: code for cell, code in master_answers().items() if cell in ANSWERED}
    assert set(answers) == set(ANSWERED) and RIGHT_DB2 in answers[MISTAKE_CELL]
    answer_on_disk(hub, student1, answers)
    answer_on_disk(hub, student2, {**answers, MISTAKE_CELL: answers[MISTAKE_CELL].replace(RIGHT_DB2, WRONG_DB2)})
    open_from_panel(pages[student2], NOTEBOOK)
    show_cell(pages[student2], NOTEBOOK, f"#| answer: {MISTAKE_CELL}")
    pages[student2].locator(".jp-Notebook .jp-Cell.jp-mod-active").get_by_text(WRONG_DB2).wait_for()
    shot(pages[student2], "4_student2_answer")
    pages[student2].get_by_role("tab", name="Assignments").click()
    for student in (student1, student2):
        submit_assignment(pages[student])
    shot(pages[student1], "5_panel_submitted")
    hub.timings["release, fetch, answer, submit"] = time.monotonic() - t0 - hub.timings["log in, three servers"]

    # 4. The instructor collects (in a terminal of their JupyterLab), then grades.
    t1 = time.monotonic()
    teacher.goto(f"{hub.url}/user/{instructor}/lab")
    wait_for_lab(teacher, instructor)
    collected = run_in_terminal(teacher, hub, instructor, f"cd ~/{COURSE_ID} && nbgrader collect {COURSE_ID}", "collect")
    assert all(f"Collecting submission: {s} {COURSE_ID}" in collected for s in (student1, student2)), collected
    shot(teacher, "6_instructor_collect")
    for student in (student1, student2):
        submitted = hub.course_dir / "submitted" / student / COURSE_ID
        assert (submitted / f"{NOTEBOOK}.ipynb").exists() and (submitted / "timestamp.txt").exists()
    graded = run_in_terminal(teacher, hub, instructor, f"cd ~/{COURSE_ID} && {GRADE}", "grade")
    assert all(s in graded for s in (student1, student2)) and "gradebook" in graded, graded
    shot(teacher, "6b_instructor_graded")
    hub.timings["collect and grade"] = time.monotonic() - t1

    # 5. Each student fetches the feedback, opens it and sees the score; the second also the diagnosis.
    t2 = time.monotonic()
    release = nbformat.read(REPO / "notebooks" / f"{NOTEBOOK}.ipynb", as_version=4)
    right, total = points_of(release, ANSWERED)
    wrong = next(c for c in release.cells if c.metadata.get("nbgrader", {}).get("grade_id") == MISTAKE_ITEM)
    expected = {student1: right, student2: right - wrong.metadata["nbgrader"]["points"]}
    assert 0 < expected[student2] < expected[student1] < total
    feedback = {}
    for number, student in enumerate((student1, student2), start=1):
        frame = fetch_feedback(pages[student], NOTEBOOK)
        shot(pages[student], f"{6 + number}_feedback_student{number}")
        text = feedback[student] = frame.locator("body").inner_text()
        score = re.search(rf"{SCORE_LINE}([\d.]+) / ([\d.]+)", text)
        assert score, text[:2000]
        assert (float(score.group(1)), float(score.group(2))) == (expected[student], total), student
    assert DIAGNOSIS in feedback[student2] and DIAGNOSIS not in feedback[student1]
    diagnosis = pages[student2].frame_locator(".jp-HTMLViewer:visible iframe").get_by_text(DIAGNOSIS).first
    diagnosis.evaluate("element => element.scrollIntoView({block: 'center'})")
    shot(pages[student2], "9_feedback_student2_diagnosis")
    hub.timings["feedback"] = time.monotonic() - t2
    hub.results.feedback = feedback

    # The gradebook agrees: nothing scored in the other notebooks (an untouched notebook passes no test).
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{hub.course_dir / 'gradebook.db'}") as gradebook:
        totals = {student: gradebook.find_submission(COURSE_ID, student).score for student in (student1, student2)}
    assert totals == expected

    # The browser asked nothing of any host but the hub (the feedback pages load nothing from anywhere).
    elsewhere = [url for url in chromium.requests if not url.startswith((hub.url + "/", "data:", "blob:", "about:"))]
    assert elsewhere == [], elsewhere


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: without local users every student is the same Unix user")
def test_students_cannot_read_each_others_work(course_hub):
    """As the OS users: no student reads the other's submission, feedback or secret, or lists the exchange's inbox."""
    hub = course_hub
    if not hasattr(hub.results, "feedback"):
        pytest.skip("the round trip did not get as far as the feedback")
    course = hub.exchange / COURSE_ID
    students = hub.students
    for me, other in ((students[0], students[1]), (students[1], students[0])):
        mine = me.home / COURSE_ID
        own = [mine / f"{NOTEBOOK}.ipynb", *mine.glob(f"feedback/*/{NOTEBOOK}.html")]
        assert len(own) == 2, own
        for path in own:  # the checks below are not vacuous: the same command reads one's own files
            assert as_student(hub, me.name, "cat", str(path)).returncode == 0, path
        assert as_student(hub, me.name, "ls", str(course / "outbound" / COURSE_ID)).returncode == 0

        theirs = other.home / COURSE_ID
        secrets_of_other = list(other.home.glob(f".local/share/jupyter/nbgrader_cache/{COURSE_ID}/*/submission_secret.txt"))
        forbidden = [
            theirs / f"{NOTEBOOK}.ipynb",  # their work
            *theirs.glob(f"feedback/*/{NOTEBOOK}.html"),  # their feedback, as fetched
            *secrets_of_other,  # what names their feedback in the exchange
            hub.course_dir / "submitted" / other.name / COURSE_ID / f"{NOTEBOOK}.ipynb",  # as collected
            hub.course_dir / "feedback" / other.name / COURSE_ID / f"{NOTEBOOK}.html",  # as generated
        ]
        assert len(forbidden) == 5 and all(path.exists() for path in forbidden), forbidden
        for path in forbidden:
            result = as_student(hub, me.name, "cat", str(path))
            assert result.returncode != 0 and "Permission denied" in result.stderr, (me.name, path, result.stderr)
        for folder in ("inbound", "feedback"):  # the exchange's inbox and feedback: enter by exact name, never list
            result = as_student(hub, me.name, "ls", str(course / folder))
            assert result.returncode != 0 and "Permission denied" in result.stderr, (me.name, folder, result.stderr)

    # What an exact name in the exchange would need: nbgrader's random part of each submission's folder
    # (72 bits) and the hash naming each feedback page (of a 64-byte secret in the student's home).
    inbound = sorted(p.name for p in (course / "inbound").iterdir())
    assert len(inbound) == 2 and all(re.fullmatch(rf"[\w-]+\+{COURSE_ID}\+[^+]+\+[A-Za-z0-9_-]{{12}}", n) for n in inbound)
    pages = sorted(p.name for p in (course / "feedback").iterdir())
    assert pages and all(re.fullmatch(r"[0-9a-f]{32}\.html", n) for n in pages), pages
    assert (course / "inbound").stat().st_mode & 0o7777 == 0o2733  # write and enter, no read
    assert (course / "feedback").stat().st_mode & 0o777 == 0o711
    assert hub.exchange.stat().st_mode & 0o7777 == 0o1777


def test_hub_stops_and_leaves_nothing_behind(course_hub):
    """Stopping the hub stops the proxy and every server and kernel; users and folders go too."""
    hub = course_hub
    root, uids = hub.root, {u.uid for u in hub.users.values()}
    tree_before = hub.running_processes()
    assert tree_before, "the hub is not running"
    report = hub.stop()
    hub.timings["stop"] = report.seconds
    print("\nhub timings (s):", {k: round(v, 1) for k, v in hub.timings.items()})
    if report.killed:  # the hub did not stop them itself: killed by process group / pid / uid, then checked below
        print("killed at teardown:", *report.killed, sep="\n  ")
    assert report.alive == [], report
    assert report.users_left == []
    assert [pid for pid, start in tree_before.items() if process_alive(pid, start)] == []
    if hub.real_users:
        assert not any(user_exists(u.name) for u in hub.users.values())
        left = processes_of(uids)
        assert left == [], [describe(pid) for pid in left]
    assert not root.exists()
    for port in hub.ports():
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still answers"

