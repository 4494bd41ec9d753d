"""``make hub`` (``python -m hub``): the course hub of tests/test_hub.py, for a person to try.

Starts JupyterHub on 127.0.0.1 with an instructor and two students (real local
users when run as root), makes the instructor's course, prints the address, the
users and their passwords and what to do, and runs until Ctrl-C; then it stops
every process it started and removes the users and its folder.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

from .course_hub import COURSE_ID, CourseHub, HubError

STEPS = """\
What to do (nbgrader's exchange workflow):
  1. Log in as {instructor}. Open {url}/user/{instructor}/formgrader in a tab of its own
     (JupyterHub forbids the iframe JupyterLab's Nbgrader > Formgrader menu would use) and click
     Release for {course}; or, in a JupyterLab terminal:
         cd ~/{course} && nbgrader release_assignment {course}
  2. In another browser (or a private window), log in as a student: Nbgrader > Assignment List,
     Fetch, open the notebooks from the panel, work, Submit.
  3. As {instructor}, in a terminal, in ~/{course}:
         nbgrader collect {course}
         nbgrader autograde {course}
         nbgrader generate_feedback {course}
         nbgrader release_feedback {course}
  4. As the student: the Assignments panel's Fetch Feedback, then "(view feedback)".
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hub", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, help="the hub's port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--release", action="store_true",
                        help="release the assignment at once (nbgrader release_assignment, as the instructor)")
    args = parser.parse_args(argv)

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)  # also where it was started with SIGINT ignored (in the background)
    hub = CourseHub(port=args.port, log=lambda message: print(f"[hub] {message}", flush=True),
                    environment={"NINJA_EX4_STEPS": "300"})
    try:
        hub.start()
        hub.prepare_course()
        if args.release:
            hub.nbgrader("release_assignment", COURSE_ID)
        print(f"\nJupyterHub: {hub.url}\n", flush=True)
        width = max(len(name) for name in hub.users)
        for user in hub.users.values():
            print(f"  {user.name:<{width}}  password {user.password}   ({user.role}, home {user.home})")
        if not hub.real_users:
            print("\n  (not root: no local users; every user runs as you and shares one password)")
        print(f"\nnbgrader's exchange: {hub.exchange}\ncourse folder: {hub.course_dir}\n")
        print(STEPS.format(url=hub.url, instructor=hub.instructor.name, course=COURSE_ID))
        print("Ctrl-C stops the hub and removes the users and every file it made.", flush=True)
        while hub.proc.poll() is None:
            time.sleep(1)
        print(f"JupyterHub exited ({hub.proc.returncode}):\n{hub.log_tail()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except HubError as error:
        print(f"make hub: {error}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        report = hub.stop()
        for line in report.killed:
            print(f"[hub] killed what outlived the hub: {line}")
        for line in report.alive + report.users_left:
            print(f"[hub] NOT cleaned up: {line}", file=sys.stderr)
        print(f"[hub] stopped in {report.seconds:.1f} s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
