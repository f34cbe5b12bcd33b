"""What to run: scenario files (``scenario``: TOML/JSON, endpoints and triggers), crafted-packet
cases (``case``: the replay contract's JSON) and their replay (``replay``). Built-ins live in
``scenarios/`` and ``cases/``."""
