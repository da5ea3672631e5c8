"""Storage: rules (``corral.state``, ``mounts:``), observation (sysfs, mountinfo, blkid), the pure
plan, and the state partition's decision and adapter. See docs/storage.md."""
