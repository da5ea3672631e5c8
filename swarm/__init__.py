"""Docker Swarm membership of the user dockerd: the ``corral.swarm`` config (``swarm.config``) and the
pure plan that keeps the membership true to it (``swarm.plan``). The adapter and the reconciler are in
``handlers/swarm/``."""
