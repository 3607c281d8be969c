"""The package version, kept apart so that anything can read it without importing the rest."""

__version__ = "0.1.0"

# The version of the objects the commands print with --json (README, "JSON output"): raised when
# a field is removed or changes meaning; adding a field keeps it.
JSON_SCHEMA_VERSION = 1
