"""Project writers: turn generated model C into something a toolchain builds (bare metal, Zephyr)."""
