"""The web dashboard served by the gateway at ``/dashboard``: static page plus a JSON API over the ledger."""
