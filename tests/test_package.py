"""The package outside this repository: the wheel, a student with only pip, a fresh Colab kernel, grading.

The fast tests check the pieces (where files are found, the install cell, the
``notebooks`` and ``colab-links`` commands). ``test_the_wheel_works_without_the_repository``
builds the wheel and the sdist, installs the wheel into a new venv in a
temporary folder and uses it from an empty folder, never from the checkout:

1. a "Colab" kernel: the venv has every dependency but not ``autograder``; a
   notebook released with the wheel's path as its package spec installs it
   from its first cell (no network: ``PIP_NO_INDEX``) and runs to the end;
2. ``backprop-ninja notebooks`` writes the release; notebooks 00-03 and 05
   with the masters' answers run with every check passing, and the blank 04
   stops at a NotImplementedError; ``backprop-ninja check`` passes one of them;
3. ``backprop-ninja grade`` grades two sample submissions to their deserved totals;
4. a damaged installed copy of names.txt is refused (its sha256).
"""

from __future__ import annotations

import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

from autograder import cli, resources
from autograder.exercises import NOTEBOOKS, items_of, notebook
from autograder.grading import course, release
from autograder.grading.release import INSTALL_ID, ReleaseError
from autograder.grading.samples import filled, make_samples

REPO = Path(__file__).resolve().parent.parent
WHEEL_NAME = "backprop_ninja-1.0.0.dev0-py3-none-any.whl"
SDIST_NAME = "backprop_ninja-1.0.0.dev0.tar.gz"
BLANK = notebook(4)  # the release notebook that runs blank; the others get the masters' answers
SOLVED = tuple(nb for nb in NOTEBOOKS if nb != BLANK)
GRADED_SAMPLES = ("full_solution", "partly_done")


def keep(answer: str, solution: str) -> str:
    return solution


def install_cell(nb) -> nbformat.NotebookNode:
    return next(cell for cell in nb.cells if cell.cell_type == "code")


# ------------------------------------------------------------------ resources


def test_a_checkout_finds_its_own_folders():
    assert resources.checkout_root() == REPO
    assert resources.data_file("names.txt") == REPO / "data" / "names.txt"
    assert resources.release_notebooks() == REPO / "notebooks" == course.RELEASE_DIR
    assert resources.course_source() == REPO / "solutions" == course.SOLUTIONS
    assert resources.work_dir() == REPO / "build"


def test_an_installed_package_finds_the_wheels_copies(tmp_path, monkeypatch):
    package = tmp_path / "site-packages" / "autograder"
    (package / "_bundled").mkdir(parents=True)  # what the wheel's build adds
    monkeypatch.setattr(resources, "PACKAGE_DIR", package)
    monkeypatch.setattr(resources, "BUNDLE", package / "_bundled")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert resources.checkout_root() is None
    assert resources.data_file("iris.csv") == package / "_bundled" / "data" / "iris.csv"
    assert resources.release_notebooks() == package / "_bundled" / "notebooks"
    assert resources.course_source() == package / "_bundled" / "course"
    assert resources.work_dir() == tmp_path / "cache" / "backprop-ninja"


def test_a_checkout_this_user_cannot_write_to_keeps_its_work_in_the_users_cache(tmp_path, monkeypatch):
    """A hub installs one checkout for everyone: an instructor who does not own it grades from their own cache."""
    writable = {REPO: False, REPO / "build": False}
    real_access = os.access
    monkeypatch.setattr(resources.os, "access", lambda path, mode: writable.get(Path(path), real_access(path, mode)))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert resources.checkout_root() == REPO
    assert resources.work_dir() == tmp_path / "cache" / "backprop-ninja"
    writable[REPO / "build"] = writable[REPO] = True  # build/ itself, or the checkout where no build/ exists yet
    assert resources.work_dir() == REPO / "build"


def test_a_checkout_stays_a_checkout_when_the_sandbox_hides_its_top_level(tmp_path, monkeypatch):
    """Grading kernels see the package and data/, not pyproject.toml or solutions/: still the checkout's data."""
    package = tmp_path / "repo" / "autograder"
    package.mkdir(parents=True)
    monkeypatch.setattr(resources, "PACKAGE_DIR", package)
    monkeypatch.setattr(resources, "BUNDLE", package / "_bundled")
    assert resources.checkout_root() == tmp_path / "repo"
    assert resources.data_file("names.txt") == tmp_path / "repo" / "data" / "names.txt"


@pytest.mark.parametrize("command", [["release"], ["demo"]])
def test_commands_that_need_the_masters_say_so_when_installed(command, monkeypatch):
    monkeypatch.setattr(resources, "checkout_root", lambda: None)
    with pytest.raises(SystemExit) as stop:
        cli.main(command)
    assert "needs a checkout" in str(stop.value) and "solutions/" in str(stop.value)


# --------------------------------------------------------------- the install cell


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_release_notebook_starts_with_the_locked_install_cell(name):
    nb = nbformat.read(course.RELEASE_DIR / f"{name}.ipynb", as_version=4)
    cell = install_cell(nb)
    assert cell.get("id") == INSTALL_ID
    assert cell.source == release._install_cell(course.PACKAGE_SPEC)
    meta = cell.metadata["nbgrader"]
    assert meta["locked"] is True and meta["grade_id"] == INSTALL_ID and not meta["grade"] and not meta["solution"]
    assert meta["checksum"] and cell.metadata["editable"] is False and cell.metadata["deletable"] is False


def run_install_cell(source: str, autograder_imports: bool) -> list[tuple[str, str]]:
    """Run the cell as IPython would; returns the line magics it called."""
    called = []

    class Shell:
        def run_line_magic(self, magic, line):
            called.append((magic, line))

    code = TransformerManager().transform_cell(source)
    modules = {} if autograder_imports else {"autograder": None}  # None in sys.modules: ImportError
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        exec(code, {"get_ipython": Shell})
    except ImportError:
        pass  # the import after the install: nothing was really installed here
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return called


def test_the_install_cell_installs_only_where_autograder_is_missing():
    source = release._install_cell("backprop-ninja>=1.0")
    assert run_install_cell(source, autograder_imports=True) == []
    assert run_install_cell(source, autograder_imports=False) == [("pip", "install -q 'backprop-ninja>=1.0'")]


@pytest.mark.parametrize("spec", ["", "backprop ninja", "pkg;rm -rf $HOME", "x{y}", "'quoted'", "a\nb"])
def test_a_package_spec_that_would_not_survive_the_magic_line_is_refused(spec):
    with pytest.raises(ReleaseError, match="package spec"):
        release._install_cell(spec)


@pytest.mark.parametrize("spec", ["backprop-ninja", "git+https://github.com/o/r@v1.0",
                                  "https://example.org/backprop_ninja-1.0.0-py3-none-any.whl", "/tmp/a.whl"])
def test_the_release_spec_reads_back_from_the_notebooks(spec, tmp_path):
    nb = nbformat.read(course.RELEASE_DIR / f"{notebook(2)}.ipynb", as_version=4)
    install_cell(nb).source = release._install_cell(spec)
    nbformat.write(nb, tmp_path / f"{notebook(2)}.ipynb")
    assert release.released_package_spec(tmp_path) == spec
    assert release.released_package_spec(REPO / "notebooks") == course.PACKAGE_SPEC


# ------------------------------------------------------------ notebooks, colab-links


def test_notebooks_writes_the_release_and_never_overwrites_work(tmp_path, capsys):
    dest = tmp_path / "course"
    cli.main(["notebooks", str(dest)])
    assert sorted(p.name for p in dest.iterdir()) == sorted(f"{nb}.ipynb" for nb in NOTEBOOKS)
    assert all((dest / p.name).read_bytes() == p.read_bytes() for p in course.RELEASE_DIR.glob("*.ipynb"))
    work = dest / f"{notebook(1)}.ipynb"
    work.write_text("a student's work")
    with pytest.raises(SystemExit) as stop:
        cli.main(["notebooks", str(dest)])
    assert "not overwriting" in str(stop.value) and "--force" in str(stop.value)
    assert work.read_text() == "a student's work"
    cli.main(["notebooks", str(dest), "--force"])
    assert work.read_bytes() == (course.RELEASE_DIR / work.name).read_bytes()


def test_notebooks_needs_neither_nbgrader_nor_torch(tmp_path):
    """A student's pip install has no [grading] extra; fetching the notebooks must not need it."""
    absent = "import sys\nfor name in ('nbgrader', 'nbconvert', 'torch'):\n    sys.modules[name] = None\n"
    fetch = f"from autograder import cli\ncli.main(['notebooks', {str(tmp_path / 'nbs')!r}])\n"
    done = subprocess.run([sys.executable, "-c", absent + fetch], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert sorted(p.stem for p in (tmp_path / "nbs").iterdir()) == sorted(NOTEBOOKS)


def test_colab_links_point_at_each_release_notebook_of_the_repository(capsys):
    cli.main(["colab-links", "--repository", "https://github.com/a-school/backprop-ninja.git", "--ref", "v1.0"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(NOTEBOOKS)
    assert (f"(https://colab.research.google.com/github/a-school/backprop-ninja/blob/v1.0/notebooks/{notebook(0)}.ipynb)"
            in lines[0])
    with pytest.raises(SystemExit) as stop:
        cli.main(["colab-links", "--repository", "https://gitlab.com/a-school/backprop-ninja"])
    assert "not a GitHub repository" in str(stop.value)


# ------------------------------------------------------------------ end to end

RUNNER = '''
"""Execute notebooks in this interpreter's kernel; print a JSON summary of what each raised or printed."""
import json, sys, time
from pathlib import Path
import nbformat
from nbclient import NotebookClient

PROBE = "import autograder, sys\\nprint(json.dumps({'file': autograder.__file__, 'path': sys.path}))"
summary = {}
for arg in sys.argv[1:]:
    path, started = Path(arg), time.monotonic()
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import json\\n" + PROBE))
    NotebookClient(nb, timeout=600, allow_errors=True, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    found = {"errors": [], "stderr": [], "not_run": [], "first_cell": None, "probe": None}
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("nbgrader", {})
        where = {"cell": meta.get("grade_id") or index, "graded": bool(meta.get("grade"))}
        if found["first_cell"] is None:
            found["first_cell"] = {**where, "ran": cell.execution_count is not None}
        if cell.execution_count is None:
            found["not_run"].append(where["cell"])
        for out in cell.outputs:
            if out.output_type == "error":
                found["errors"].append({**where, "ename": out.ename, "evalue": out.evalue[:300]})
            elif out.output_type == "stream" and out.name == "stderr":
                found["stderr"].append({**where, "text": out.text[:300]})
    found["probe"] = json.loads(nb.cells[-1].outputs[0].text)
    found["seconds"] = round(time.monotonic() - started, 1)
    summary[path.stem] = found
print(json.dumps(summary))
'''


class Venv:
    """A fresh venv in ``folder``, used from ``cwd`` with a clean environment (no repository anywhere)."""

    def __init__(self, folder: Path, cwd: Path, home: Path):
        self.folder, self.cwd, self.bin = folder, cwd, folder / "bin"
        self.env = {"PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}", "HOME": str(home),
                    "LANG": os.environ.get("LANG", "C.UTF-8"), "PYTHONNOUSERSITE": "1", "MPLBACKEND": "agg",
                    "OMP_NUM_THREADS": "1", "NINJA_QUICK_TIMING": "1", "NINJA_EX4_STEPS": "200",
                    # the machine's pip set-up (its local wheels, certificates, cache)
                    **{key: value for key, value in os.environ.items() if key.startswith("PIP_")}}

    def run(self, *argv, check=True, extra_env=None, cwd=None, timeout=900) -> subprocess.CompletedProcess:
        done = subprocess.run([str(a) for a in argv], cwd=cwd or self.cwd, env={**self.env, **(extra_env or {})},
                              capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            pytest.fail(f"{' '.join(map(str, argv))} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done

    def python(self, *argv, **kwargs) -> subprocess.CompletedProcess:
        return self.run(self.bin / "python", *argv, **kwargs)

    def start(self, *argv, extra_env=None, cwd=None) -> subprocess.Popen:
        return subprocess.Popen([str(a) for a in argv], cwd=cwd or self.cwd, env={**self.env, **(extra_env or {})},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def execute(self, runner: Path, *groups: list[Path], extra_env=None, cwd=None) -> dict:
        """Run each group of notebooks in its own process, the groups side by side; the runner's summaries."""
        running = [self.start(self.bin / "python", runner, *group, extra_env=extra_env, cwd=cwd) for group in groups]
        summary = {}
        for process in running:
            out, err = finish(process)
            summary.update(json.loads(out.splitlines()[-1]))
        return summary


def finish(process: subprocess.Popen, timeout: float = 900) -> tuple[str, str]:
    out, err = process.communicate(timeout=timeout)
    if process.returncode != 0:
        pytest.fail(f"{' '.join(process.args)} exited {process.returncode}:\n{out[-3000:]}\n{err[-3000:]}")
    return out, err


class Stopwatch:
    """Wall seconds per step, and the CPU seconds of everything run (a measure that does not depend on the load)."""

    def __init__(self):
        self.laps, self.last = {}, time.monotonic()

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps[name], self.last = round(now - self.last, 1), now

    @staticmethod
    def cpu_seconds() -> float:
        mine, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return round(mine.ru_utime + mine.ru_stime + children.ru_utime + children.ru_stime, 1)


def assert_runs_clean(found: dict, site_packages: Path) -> None:
    assert found["errors"] == [] and found["not_run"] == [], found
    assert [s for s in found["stderr"] if s["graded"]] == [], found["stderr"]  # nbgrader fails such a test cell
    assert found["first_cell"] == {"cell": INSTALL_ID, "graded": False, "ran": True}
    assert Path(found["probe"]["file"]).is_relative_to(site_packages)
    assert not [p for p in found["probe"]["path"] if p.startswith(str(REPO))]


@pytest.mark.slow
def test_the_wheel_works_without_the_repository(tmp_path):
    clock, cpu_before = Stopwatch(), Stopwatch.cpu_seconds()
    scratch = Path(os.path.realpath(tmp_path))
    assert not scratch.is_relative_to(REPO)

    # The wheel and the sdist, as `make dist` builds them (the wheel from the sdist).
    dist = scratch / "dist"
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(dist), str(REPO)], check=True, capture_output=True)
    wheel, sdist = dist / WHEEL_NAME, dist / SDIST_NAME
    names = set(zipfile.ZipFile(wheel).namelist())
    bundled = {f"autograder/_bundled/{kind}/{nb}.ipynb" for nb in NOTEBOOKS for kind in ("notebooks", "course")}
    assert bundled | {"autograder/_bundled/data/names.txt", "autograder/_bundled/data/iris.csv"} <= names
    with tarfile.open(sdist) as archive:
        assert not [m.name for m in archive.getmembers() if "/solutions/" in m.name]
        for member in archive.getmembers():
            if member.name.endswith(".ipynb"):
                assert b"dlogits[range(n), Yb] -= 1" not in archive.extractfile(member).read(), member.name
    assert b"dlogits[range(n), Yb] -= 1" not in zipfile.ZipFile(wheel).read(
        f"autograder/_bundled/course/{notebook(2)}.ipynb")
    clock.lap("build wheel and sdist")

    # A Colab-like kernel: every dependency (pinned by requirements.txt) but not autograder.
    cwd, home = scratch / "empty", scratch / "home"
    cwd.mkdir(), home.mkdir()
    subprocess.run([sys.executable, "-m", "venv", str(scratch / "venv")], check=True)
    venv = Venv(scratch / "venv", cwd, home)
    # --no-compile: a throwaway venv need not byte-compile all of torch ahead of time
    installing = venv.start(venv.bin / "python", "-m", "pip", "install", "-q", "--no-compile",
                            "-c", REPO / "requirements.txt", f"{wheel}[grading]")
    # Meanwhile: a release whose install cell names the wheel, and the sample submissions.
    colab = scratch / "colab"
    release.generate_release(colab / "release", colab / "course", package_spec=str(wheel))
    samples = scratch / "samples"
    expected = make_samples(samples)
    finish(installing)
    venv.python("-m", "pip", "uninstall", "-q", "-y", "backprop-ninja")
    assert venv.python("-c", "import autograder", check=False).returncode != 0
    site_packages = Path(venv.python("-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    clock.lap("fresh venv with the dependencies (and the colab release, the samples)")

    runner = scratch / "run_notebooks.py"
    runner.write_text(RUNNER)
    released = nbformat.read(colab / "release" / f"{notebook(0)}.ipynb", as_version=4)
    assert f"%pip install -q {wheel}" in install_cell(released).source
    nbformat.write(filled(notebook(0), keep, release_dir=colab / "release"), cwd / f"{notebook(0)}.ipynb")
    found = venv.execute(runner, [cwd / f"{notebook(0)}.ipynb"], extra_env={"PIP_NO_INDEX": "1"})[notebook(0)]
    assert_runs_clean(found, site_packages)
    assert (venv.bin / "backprop-ninja").exists()  # the install cell installed the wheel, console script and all
    (cwd / f"{notebook(0)}.ipynb").unlink()
    clock.lap("colab: release with the wheel as spec, install cell, notebook 00")

    # A student with only pip: fetch the notebooks into an empty folder and run them.
    venv.run(venv.bin / "backprop-ninja", "notebooks", "course")
    folder = cwd / "course"
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{nb}.ipynb" for nb in NOTEBOOKS)
    assert all((folder / p.name).read_bytes() == p.read_bytes() for p in (REPO / "notebooks").glob("*.ipynb"))
    for nb in SOLVED:
        nbformat.write(filled(nb, keep, release_dir=folder), folder / f"{nb}.ipynb")
    paths = [folder / f"{nb}.ipynb" for nb in NOTEBOOKS]
    summary = venv.execute(runner, paths[0::2], paths[1::2], cwd=folder)  # two kernels at a time
    for nb in SOLVED:
        assert_runs_clean(summary[nb], site_packages)
    blank_errors = summary[BLANK]["errors"]
    assert blank_errors and blank_errors[0]["ename"] == "NotImplementedError", blank_errors[:1]
    clock.lap("notebooks 00-03, 05 solved and 04 blank")
    clock.laps["each notebook"] = {nb: summary[nb]["seconds"] for nb in NOTEBOOKS}

    checked = venv.run(venv.bin / "backprop-ninja", "check", folder / f"{notebook(2)}.ipynb")
    items = len(items_of(notebook(2)))
    assert f"in all: {items} / {items} items passed" in checked.stdout, checked.stdout
    clock.lap("backprop-ninja check on notebook 02")

    # Grading from the installed package: the course template comes from the wheel.
    submissions = scratch / "submissions"
    for student in GRADED_SAMPLES:
        shutil.copytree(samples / student, submissions / student)
    graded = venv.run(venv.bin / "backprop-ninja", "grade", submissions, "--out", scratch / "out", "--jobs", "2")
    with open(scratch / "out" / "grades.csv", newline="") as file:
        totals = {row["student_id"]: float(row["total"]) for row in csv.DictReader(file)}
    assert totals == {student: expected[student] for student in GRADED_SAMPLES}, graded.stdout[-2000:]
    assert expected["full_solution"] > expected["partly_done"] > 0
    # The course template was made from the wheel (not a checkout's build/), and its release is the committed one.
    templates = list((home / ".cache" / "backprop-ninja" / "grading-templates").glob("*/templates"))
    assert len(templates) == 1
    assert release.folder_differences(REPO / "notebooks", templates[0]) == []
    clock.lap("grade two submissions")

    # The sha256 check guards the installed copy of the data too.
    names = site_packages / "autograder" / "_bundled" / "data" / "names.txt"
    names.write_bytes(names.read_bytes() + b"zzz\n")
    damaged = venv.python("-c", "from autograder.workbook.data import load_names; load_names()", check=False)
    assert damaged.returncode != 0 and "NamesFileError" in damaged.stderr and "reinstall" in damaged.stderr
    clock.lap("damaged data refused")
    clock.laps["cpu seconds, this process and its children"] = clock.cpu_seconds() - cpu_before
    print("package test laps (s):", clock.laps)
