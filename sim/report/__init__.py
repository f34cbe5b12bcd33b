"""The report layer: turns what the model did into words, tables, captures and figures."""
