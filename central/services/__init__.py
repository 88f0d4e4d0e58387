"""The central's business operations, free of HTTP: each takes an engine or a connection, plain values and
the current time, and returns plain data or raises ``ServiceError``. The Flask views and the CLI call these."""
