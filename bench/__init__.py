"""Benchmarks (``make bench``): each module here has a ``main()`` that prints its figures and the ratios
against its issue's targets. They measure; they are not timed tests and never fail a build."""
