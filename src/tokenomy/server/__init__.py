"""The HTTP edge: routes, wire formats, SSE and errors."""
