"""``backprop-ninja`` (or ``python -m autograder``): release the workbook, grade submissions, run the demo."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="backprop-ninja", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    release = commands.add_parser("release", help="generate notebooks/ from solutions/ with nbgrader (in a checkout), "
                                                   "or the assignment into an nbgrader course (--course)")
    release.add_argument("--package-spec", default=None,
                         help="what each notebook's first cell installs where autograder is missing "
                              "(default: PACKAGE_SPEC in autograder/grading/course.py)")
    release.add_argument("--course", type=Path, default=None, metavar="COURSE",
                         help="an nbgrader course folder: generate the assignment into COURSE/release/<assignment>/ "
                              "and its gradebook, ready for `nbgrader release_assignment` (a checkout or the wheel)")

    notebooks = commands.add_parser("notebooks", help="copy the student notebooks into DEST")
    notebooks.add_argument("dest", type=Path, help="the folder to write them to (created if needed)")
    notebooks.add_argument("--force", action="store_true", help="replace notebooks already in DEST")

    links = commands.add_parser("colab-links", help='print "Open in Colab" links to the release notebooks')
    links.add_argument("--repository", default=None, help="the public GitHub repository (default: REPOSITORY_URL in course.py)")
    links.add_argument("--ref", default=None, help="branch or tag (default: REPOSITORY_REF in course.py)")

    grade = commands.add_parser("grade", help="autograde SUBMISSIONS/<student_id>/*.ipynb into OUT, or an nbgrader "
                                               "course's submitted/ into the course (--course)")
    grade.add_argument("submissions", type=Path, nargs="?", default=None,
                       help="a folder with one folder per student (their notebooks, or nbgrader's <assignment>/ "
                            "folder of them)")
    grade.add_argument("--out", type=Path, default=None, help="the folder for results (gradebook, CSV, feedback)")
    grade.add_argument("--course", type=Path, default=None, metavar="COURSE",
                       help="grade COURSE/submitted (what `nbgrader collect` leaves) into the course itself: its "
                            "gradebook.db, autograded/ and feedback/ (for `nbgrader release_feedback`); the tables "
                            "and the class report go to COURSE/reports/<assignment>/")
    _grading_options(grade)

    demo = commands.add_parser("demo", help="release, grade the sample submissions, print the gradebook")
    demo.add_argument("--out", type=Path, default=None, help="folder for the samples and results (default build/demo)")
    _grading_options(demo, item_timeout=5.0)

    check = commands.add_parser("check", help="self-check before submitting: run each notebook on a copy, print passed / total")
    check.add_argument("folder", type=Path, nargs="?", default=Path("notebooks"), help="the notebooks (default: notebooks)")
    check.add_argument("--timeout", type=float, default=300.0, help="seconds each notebook may run (default %(default)g)")
    check.add_argument("--ex4-steps", type=int, default=300, help="training steps of Exercise 4 (default %(default)d)")

    _lecture_commands(commands)
    _export_command(commands)

    args = parser.parse_args(argv)
    if args.command in ("check-lecture", "grade-lecture"):
        sys.exit(_run_lecture_command(args))
    if args.command == "release" and args.course is not None:
        _release_into_course(args.course, args.package_spec)
    elif args.command == "release":
        _release(args.package_spec)
    elif args.command == "notebooks":
        _copy_notebooks(args.dest, args.force)
    elif args.command == "colab-links":
        _colab_links(args.repository, args.ref)
    elif args.command == "grade":
        _grade(*_grade_places(parser, args), _settings(args))
    elif args.command == "demo":
        _demo(args.out, _settings(args))
    elif args.command == "export":
        _export(args)
    elif args.command == "check":
        from .checking.selfcheck import main as self_check

        sys.exit(self_check(args.folder, timeout=args.timeout, ex4_steps=args.ex4_steps))


# ------------------------------------------------------------------ export (grades for an LMS)

def _export_command(commands) -> None:
    from .grading.export import DEFAULT_ASSIGNMENT, FORMATS

    export = commands.add_parser("export", help="write OUT's grades as a Canvas, Moodle or long CSV file")
    export.add_argument("out", type=Path, help="a folder that `grade` wrote (its gradebook.db)")
    export.add_argument("--format", required=True, choices=FORMATS, help="the LMS's import format, or long (one row per item)")
    export.add_argument("--output", type=Path, required=True, help="the CSV file to write")
    export.add_argument("--roster", type=Path, default=None,
                        help="CSV: student_id (the submission folder), name, email, sis_user_id, sis_login_id, section")
    export.add_argument("--assignment", default=DEFAULT_ASSIGNMENT, help="the assignment's name in the LMS (default %(default)s)")
    export.add_argument("--assignment-id", default="", help="Canvas: the assignment's id, for its column '<assignment> (<id>)'")
    export.add_argument("--nbgrader-assignment", default=None, metavar="NAME",
                        help="the assignment's name in the gradebook (default backprop_ninja)")


def _export(args) -> None:
    from .grading.export import ExportError, export

    try:
        summary = export(args.out, args.format, args.output, args.roster, args.assignment, args.assignment_id,
                         **({"nbgrader_assignment": args.nbgrader_assignment} if args.nbgrader_assignment else {}))
    except ExportError as err:
        sys.exit(f"error: {err}")
    print(f"wrote {args.output}: {summary.rows} students ({args.format})")
    if summary.missing:
        print(f"on the roster with no submission (exported with 0): {', '.join(summary.missing)}")
    if summary.unknown:
        print(f"graded but not on the roster (exported, unknown to the LMS): {', '.join(summary.unknown)}")


def _demo(out: Path | None, settings) -> None:
    import shutil

    from .grading import report
    from .grading.course import BUILD
    from .grading.samples import make_samples

    _need_checkout("demo")
    out = out or BUILD / "demo"
    _release()
    shutil.rmtree(out, ignore_errors=True)
    expected = make_samples(out / "submissions")
    print(f"\nsample submissions in {out / 'submissions'}: {', '.join(expected)}\n")
    _grade(out / "submissions", out / "grading", settings)
    rows = {row["student_id"]: row["total"] for row in report.gradebook_rows(out / "grading")}
    wrong = {name: (rows.get(name), want) for name, want in expected.items() if rows.get(name) != want}
    for name, want in expected.items():
        print(f"{name:20s} scored {rows.get(name, 0):g}, deserves {want:g}  {'ok' if name not in wrong else 'MISMATCH'}")
    if wrong:
        sys.exit(f"{len(wrong)} sample(s) did not get the score they deserve")


def _grading_options(parser: argparse.ArgumentParser, **overrides) -> None:
    from .grading.results import GradingSettings

    defaults = GradingSettings().but(**overrides)
    parser.add_argument("--jobs", type=int, default=defaults.cluster.jobs,
                        help="worker processes of the embedded Dask cluster: students graded at once (default: cores)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="grade on the Dask cluster of this scheduler, e.g. tcp://host:8786 "
                             "(default: $DASK_SCHEDULER_ADDRESS, else an embedded cluster)")
    parser.add_argument("--regrade", action="store_true",
                        help="grade every student again (default: skip students whose result is already in OUT)")
    parser.add_argument("--item-timeout", type=float, default=defaults.worker.item_timeout,
                        help="seconds per item and hidden case in the judge (default %(default)g)")
    parser.add_argument("--student-timeout", type=float, default=defaults.worker.student_timeout,
                        help="seconds of grading per student; items not judged by then score 0 (default %(default)g)")
    parser.add_argument("--memory-limit", type=float, default=defaults.worker.memory_limit, metavar="GB",
                        help="memory of each sandboxed process of a student, its /tmp included, in GB "
                             "(default %(default)g)")
    parser.add_argument("--assignment", default=defaults.worker.assignment,
                        help="the nbgrader assignment's name, as in the course's gradebook and folders "
                             "(default %(default)s)")


def _settings(args):
    from .grading.results import GradingSettings

    return GradingSettings().but(jobs=args.jobs, scheduler=args.scheduler, regrade=args.regrade,
                                 item_timeout=args.item_timeout, student_timeout=args.student_timeout,
                                 memory_limit=args.memory_limit, assignment=args.assignment)


def _grade_places(parser, args):
    """(submissions, where to write) from ``SUBMISSIONS --out OUT`` or ``--course COURSE``."""
    from .grading.report import Destination

    if args.course is not None:
        if args.out is not None:
            parser.error("grade: --course writes into the course; leave out --out")
        return args.submissions or args.course / "submitted", Destination.course(args.course, args.assignment)
    if args.submissions is None or args.out is None:
        parser.error("grade: give SUBMISSIONS --out OUT, or --course COURSE")
    return args.submissions, Destination(args.out, args.out, args.assignment)


def _grade(submissions: Path, out, settings) -> list:
    from .engine.errors import GradingError
    from .grading import report
    from .grading.grade import grade

    dest = report.destination(out)
    try:
        results = grade(submissions, dest, settings)
    except GradingError as err:
        sys.exit(f"error: {err}")
    except KeyboardInterrupt:
        sys.exit(f"\ninterrupted: every result received so far is kept in {dest.root}; "
                 "running the same command again grades the rest")
    print()
    print(report.summary_table(report.gradebook_rows(dest)))
    print(f"\ngradebook {dest.gradebook}\ngrades    {dest.tables / report.GRADES_CSV}\n"
          f"flags     {dest.tables / report.FLAGS_CSV}\nfeedback  {dest.root / 'feedback'}/<student_id>/index.html"
          f" and <student_id>/{dest.assignment}/<notebook>.html")
    return results


def _need_checkout(command: str) -> None:
    from . import resources

    if resources.checkout_root() is None:
        sys.exit(f"error: `{command}` works on the masters in solutions/, so it needs a checkout of the repository "
                 "(this autograder is installed from a wheel, which carries the release but not the solutions)")


def _copy_notebooks(dest: Path, force: bool) -> None:
    from .grading.release import ReleaseError, copy_release

    try:
        written = copy_release(dest, overwrite=force)
    except (ReleaseError, OSError) as err:
        sys.exit(f"error: {err}")
    for path in written:
        print(f"wrote {path}")


def _colab_links(repository: str | None, ref: str | None) -> None:
    from .grading import course
    from .grading.release import ReleaseError, colab_links

    repository = repository or course.REPOSITORY_URL
    if not repository:
        sys.exit("error: no repository: pass --repository https://github.com/OWNER/REPO or set REPOSITORY_URL "
                 "in autograder/grading/course.py")
    try:
        links = colab_links(repository, ref or course.REPOSITORY_REF)
    except ReleaseError as err:
        sys.exit(f"error: {err}")
    for name, url in links:
        print(f"| `{name}` | [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url}) |")


def _release(package_spec: str | None = None) -> None:
    from .grading import course
    from .grading.release import ReleaseError, generate_release, leaked_markers

    _need_checkout("release")
    try:
        written = generate_release(package_spec=package_spec or course.PACKAGE_SPEC)
    except ReleaseError as err:
        sys.exit(str(err))
    for path in written:
        print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    leaks = leaked_markers()
    if leaks:
        sys.exit("solution or hidden-test text in the release:\n  " + "\n  ".join(leaks))


def _release_into_course(course: Path, package_spec: str | None) -> None:
    from .grading import course as settings
    from .grading.release import ReleaseError, release_into_course

    try:
        written = release_into_course(course, package_spec or settings.PACKAGE_SPEC)
    except (ReleaseError, FileExistsError) as err:
        sys.exit(f"error: {err}")
    for path in written:
        print(f"wrote {path}")
    print(f"the assignment is in {course / 'gradebook.db'}; publish it with "
          f"`nbgrader release_assignment {settings.ASSIGNMENT}` (in {course})")


# ------------------------------------------------ notebooks in the lecture's own format

def _lecture_commands(commands) -> None:
    from .lecture import EX4_STEPS, EXERCISE_SECONDS

    check = commands.add_parser("check-lecture", help="check the answers in a notebook of the lecture's own format")
    check.add_argument("notebook", type=Path, help="a .ipynb (or a .py exported from Colab) in the lecture's format")
    check.add_argument("--json", type=Path, default=None, dest="json_out", help="also write the results as JSON")
    grade = commands.add_parser("grade-lecture", help="grade SUBS/<id>/*.ipynb or SUBS/<id>.ipynb in the lecture's format")
    grade.add_argument("submissions", type=Path, help="a folder of notebooks or of one folder per student")
    grade.add_argument("--out", type=Path, required=True, help="folder for grades.csv, mistakes.csv and the feedback")
    grade.add_argument("--jobs", type=int, default=None, help="worker processes of the embedded Dask cluster "
                       "(default: the number of cores)")
    grade.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="grade on the Dask cluster of this scheduler (default: $DASK_SCHEDULER_ADDRESS, "
                            "else an embedded cluster)")
    for parser in (check, grade):
        parser.add_argument("--exercise-timeout", type=float, default=EXERCISE_SECONDS,
                            help="seconds each exercise may run (default %(default)g)")
        parser.add_argument("--ex4-steps", type=int, default=EX4_STEPS,
                            help="training steps checked in Exercise 4 (default %(default)d)")


def _run_lecture_command(args) -> int:
    import dataclasses

    from .lecture import LectureSettings

    settings = LectureSettings(exercise_seconds=args.exercise_timeout, ex4_steps=args.ex4_steps)
    if args.command == "check-lecture":  # one notebook: its children forked from this process, torch imported once
        from .lecture.check import main as check_lecture

        return check_lecture(args.notebook, args.json_out, dataclasses.replace(settings, fork_here=True))
    from .engine.cluster import ClusterSettings
    from .lecture.grade import main as grade_lecture

    engine = ClusterSettings(scheduler=args.scheduler, **({"jobs": args.jobs} if args.jobs else {}))
    return grade_lecture(args.submissions, args.out, settings, engine)
