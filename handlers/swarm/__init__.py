"""The swarm reconciler (``reconciler.py``) and its thin adapter to the user dockerd (``client.py``)."""
