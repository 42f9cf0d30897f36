"""What administrators check a configuration with before it goes live: the preview of what
each adapter would receive, and the mapping tests kept beside the config (the casebook).

Above intake, routing and mapping: it runs a message through all three, as the worker
would, without delivering.
"""
