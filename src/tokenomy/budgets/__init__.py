"""Budgets: spend per period with reservation before dispatch, in process or in Redis."""
