"""Modal screens: help and open-a-file."""
