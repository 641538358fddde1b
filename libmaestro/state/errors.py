"""Errors raised by the state store.

The tree (all derive from `libmaestro.errors.MaestroError`)::

    StateError                 the store cannot do what was asked
    ├── StateTransitionError   a step or run was asked to move to a state it cannot reach
    ├── StateVersionError      the database was written by a newer maestro (schema too new)
    ├── StateNotFoundError     no session, run or step with that name or id
    ├── StateConflictError     the request contradicts what is recorded (a run already active...)
    └── StateBusyError         another process held the database locked for too long

They live beside the store rather than in `libmaestro/errors.py` so the store stays one
self-contained package; `libmaestro.errors` may re-export them.
"""

from __future__ import annotations

from libmaestro.errors import MaestroError


class StateError(MaestroError):
    """The state store cannot do what was asked (unreadable database, bad request...)."""


class StateTransitionError(StateError):
    """A step or run was asked to move between two states the state machine does not connect."""


class StateVersionError(StateError):
    """The database's schema is newer than this maestro understands."""


class StateNotFoundError(StateError):
    """No session, run or step matches the name or id given."""


class StateConflictError(StateError):
    """The request contradicts the recorded state (for example, a second active run)."""


class StateBusyError(StateError):
    """Another process kept the database locked for longer than the busy timeout."""
