"""The course hub: JupyterHub with nbgrader's exchange for this workbook (``make hub``, tests/test_hub.py).

Not part of the installed package: a real course's hub is set up by its
administrators; ``hub/README_SECTION.md`` says how, and ``jupyterhub_config.py``
here is the configuration the test runs.
"""
