"""Where maestro keeps things inside a project: names shared by several layers."""

from __future__ import annotations

WORK_DIR_NAME = "maestro_work"  # <project>/maestro_work/<session>/<process>/
GRAPH_FILE = "graph.json"  # <session directory>/graph.json: the run's process graph
ABORT_FILE = (
    ".maestro-abort.json"  # <session directory>/: processes a user aborted before they start
)
ATTEMPTS_DIR = ".attempts"  # <session directory>/.attempts/: earlier attempts, kept
