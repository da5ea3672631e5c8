"""The units reconciler, in parts (see ``reconciler`` for how a reconcile goes):

- ``reconciler``: ``UnitsReconciler``, the runner's reconciler; composes the parts below
- ``desired``: the configured units, their restart policies and graph, the deliberate stops file
- ``dockerds``: the clients of each dockerd and their epochs
- ``observe``: the units' containers as listed, and as kept between reconciles
- ``image_ids``: the units' image ids, and each dockerd's image events
- ``required_mounts``: the paths units require (``io.corral.requires-mount``) as observed
- ``exits``: the ``die`` events, followed at once
- ``inits``: the units' container inits, watched through pidfds (gone: the same path as a ``die``)
- ``restarts``: exits and failed starts, between the restart policies and the reconciler
- ``acting``: carrying out the plan (the actions in flight), the fast restart path, stopping at shutdown
- ``status``: what is reported about the units; the first wave, every unit up
- ``commands``: the user's commands on a unit (up, down, restart, inspect)
- ``wake``: asking for the next reconcile

The ``units`` boot phase that starts it is wiring: ``supervisor/boot/units.py``."""
