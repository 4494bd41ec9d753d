"""The course pipeline around nbgrader: release, sanitise, autograde, report."""
