"""The request path: the call context, the chain of stages, and one module per stage."""
