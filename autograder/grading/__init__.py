"""The instructors' course pipeline around nbgrader: release, sanitise, autograde, report, export.

``release`` and ``course`` make the student release from the masters;
``grade`` grades a class on the engine, one ``worker.grade_student`` task
per student (``sanitize``, the judge, nbgrader's autograde with
``preprocessors``); ``report``, ``class_report``, ``late`` and ``export``
write what a teacher reads; ``samples`` makes the demo's submissions.

May import: ``engine``, ``checking``, ``judge``, ``kinds``, ``diagnosis``, ``workbook`` and the top-level
``resources``, ``exercises`` and ``cells``; never ``lecture``.
"""
