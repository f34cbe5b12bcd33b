"""The iptables user-space tools: command lines and ``iptables-restore`` (``cmd``),
``iptables-save`` / ``iptables -nvL`` output (``save``)."""
