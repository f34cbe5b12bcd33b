"""The report layer: what the trace means, in words, tables, captures and figures."""
