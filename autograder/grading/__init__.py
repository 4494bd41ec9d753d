"""The instructors' course pipeline around nbgrader: release, read submissions, grade, report, export.

``release`` and ``course`` make the student release from the masters;
``grade`` grades a class on the engine, one ``worker.grade_student`` task
per student (``submissions`` reads a folder safely, ``sanitize`` rebuilds its
notebooks on the release, the judge scores, ``feedback`` writes the pages;
the values that cross are ``results``); ``report``, ``class_report``,
``late`` and ``export`` write what a teacher reads; ``samples`` makes the
demo's submissions.

May import: ``engine``, ``checking``, ``judge``, ``kinds``, ``diagnosis``, ``workbook`` and the top-level
``resources``, ``exercises`` and ``cells``; never ``lecture``.
"""
