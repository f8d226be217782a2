"""Per-chip tuning of the schedule rules' knobs (AutoTVM's role, on MetaSchedule's database).

space.py (what is searched), measure.py (builder and runners), tuner.py (the search and the
record), server.py (an RPC measuring server behind TVM's tracker), __main__.py (the CLI).
"""
