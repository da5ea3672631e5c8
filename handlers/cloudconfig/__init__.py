"""cloud-config modules: ``write_files``, ``bootcmd``/``runcmd`` and ``corral.sysctl``.

Each module is a pure part (what to do, parsed from the config by the module's domain check, which
also gives its warnings) and a thin effect part (files written, commands spawned through
``supervisor.process``, ``/proc/sys`` written). ``supervisor/boot/modules.py`` wires them into the boot
phases; docs/config.md says what runs when."""
