"""Routing decisions and feedback -> a SQL decision log (SQLite by default, or PostgreSQL).

Public interface::

    log = create_decision_log(database_url, sqlite_path)   # DecisionLog
    await log.start()
    await log.record(LogRow(...))      # returns once the row is committed (group commit)
    await log.close()                  # drains
    log.iter_rows(since, until) / log.count()
    log.add_feedback(...) / log.feedback_exists(...) / log.iter_feedback(...)
"""

from router_service.logstore.feedback import add_feedback, feedback_exists, iter_feedback
from router_service.logstore.schema import LOG_ROW_FIELDS, LogRow, metadata
from router_service.logstore.schema import decisions as decisions_table
from router_service.logstore.schema import feedback as feedback_table
from router_service.logstore.store import (
    DecisionLog,
    create_decision_log,
    make_engine,
    normalise_database_url,
)
from router_service.logstore.writer import (
    DecisionLogClosedError,
    DecisionLogError,
    DecisionLogFullError,
    DecisionLogWriteError,
)

__all__ = [
    "LOG_ROW_FIELDS",
    "DecisionLog",
    "DecisionLogClosedError",
    "DecisionLogError",
    "DecisionLogFullError",
    "DecisionLogWriteError",
    "LogRow",
    "add_feedback",
    "create_decision_log",
    "decisions_table",
    "feedback_exists",
    "feedback_table",
    "iter_feedback",
    "make_engine",
    "metadata",
    "normalise_database_url",
]
