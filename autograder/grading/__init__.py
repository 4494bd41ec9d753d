"""The course pipeline around nbgrader: release, sanitise, autograde, report."""

import sys

# jsonschema (under nbformat and nbgrader) imports rfc3987_syntax only to check
# "iri" string formats, which notebooks never use, and that module builds a
# parser grammar at import: 2.7 s for every grading process. Skip it.
sys.modules.setdefault("rfc3987_syntax", None)
