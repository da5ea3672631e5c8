"""The installed disk: its GPT layout, its slots, the upgrade bundle and the bootloader (docs/install.md)."""
