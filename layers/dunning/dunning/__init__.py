"""Dunning: compliance-aware collections reminders.

The package is the whole product logic; the Lambda handlers in functions/ are thin wrappers around it.
``dunning.engine.decide`` is the pure decision core; everything touching AWS lives in
``dunning.adapters`` and the services that use them.
"""

__version__ = "0.1.0"
