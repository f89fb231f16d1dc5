"""Routing: choosing which model answers a request (the learned router lives in ``routing.learned``)."""
