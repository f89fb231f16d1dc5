"""The advisor: reads the usage ledger and ranks concrete actions by estimated monthly saving."""
