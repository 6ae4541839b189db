"""Bytewax dataflows (wiring only); each module exposes build_flow(settings) and main()."""
