"""Shared pytest setup: hypothesis profiles (ci: derandomized, no deadline; dev; thorough)."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile(
    "thorough", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# Parser fuzzing (tests/property/test_parser_fuzz.py): at least 10,000 inputs per parser alone
# in ci ("-parsers"), and a sample of them through the whole model ("-whole").
PARSER_EXAMPLES = {"ci": 10_000, "dev": 300, "thorough": 50_000}
WHOLE_MODEL_EXAMPLES = {"ci": 200, "dev": 30, "thorough": 2_000}
for _name in PARSER_EXAMPLES:
    for _suffix, _examples in (("parsers", PARSER_EXAMPLES[_name]), ("whole", WHOLE_MODEL_EXAMPLES[_name])):
        settings.register_profile(
            f"{_name}-{_suffix}",
            settings.get_profile(_name),
            max_examples=_examples,
            suppress_health_check=[
                HealthCheck.too_slow,
                HealthCheck.filter_too_much,
                HealthCheck.data_too_large,
            ],
        )
