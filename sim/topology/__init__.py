"""Worlds ready to use: the docker-bridge preset (``docker_bridge``) and the iptables ruleset
Docker installs on the host (``docker_rules``)."""
