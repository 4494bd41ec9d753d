"""Command line: ``python -m autograder <command>``; ``--help`` lists the commands."""

from .cli import main

if __name__ == "__main__":  # not when a worker process started by the grader imports this module again
    main()
