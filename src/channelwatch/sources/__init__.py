"""Sources: where observed publications come from (exported files, polled platforms).

A source never writes to the database; ``channelwatch.ingest`` stores what it yields.
"""
