"""Command line: ``python -m autograder <command>``; ``--help`` lists the commands."""

from .grading.cli import main

main()
