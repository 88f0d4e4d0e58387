"""The central API of Pass #APTIC: activates terminals, knows carnets and their restrictions, judges validity
with authority, ingests scans idempotently, computes monthly counter-payment statements.

Layout (pretix-style): ``schema`` (tables, SQLAlchemy Core), ``db`` (engines, migrations), ``services``
(the business operations, no HTTP), ``api`` (the Flask blueprint that maps HTTP onto the services),
``app`` (the application factory), ``cli`` (``aptic-central``). Validity rules come from ``aptic``; the
central only gathers the facts they need from its database.
"""
