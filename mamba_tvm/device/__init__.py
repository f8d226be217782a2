"""Running generated programs: QEMU today, boards and RPC sessions later."""
