"""The installed disk: its layout, its boot slots A and B, and GRUB's boot selection (docs/install.md)."""
