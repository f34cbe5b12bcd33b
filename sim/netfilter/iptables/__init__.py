"""The iptables user-space tools: command lines (``cmd``), ``iptables-restore`` text (``restore``),
``iptables-save`` / ``iptables -nvL`` output (``save``), libxtables' value parsers and the one
error type (``parse``), and one module per match or target extension (``ext/``), as iptables
keeps one ``libxt_*.c`` per extension."""
