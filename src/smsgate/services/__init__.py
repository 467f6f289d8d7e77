"""The use cases, between the dialects and the store: ``sending`` (send, credentials), ``recording`` (what the
group commit records, and the sink connectors report to), ``webhooks`` and ``numbers`` (an account's settings and
Phone Numbers). They hold the rules' order and take ``core`` values; they import neither the dispatcher nor a
connector nor the HTTP edge (``tests/unit/test_layers.py``).
"""
