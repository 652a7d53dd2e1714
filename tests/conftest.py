import os

from hypothesis import HealthCheck, settings

# The default profile ("ci") is small and derandomized: the same examples every run, so CI is repeatable and a red
# run means a real regression. `HYPOTHESIS_PROFILE=dev` (20 random examples) or `thorough` (300) search harder.
_COMMON = dict(deadline=None, suppress_health_check=list(HealthCheck))
settings.register_profile("ci", max_examples=5, derandomize=True, database=None, **_COMMON)
settings.register_profile("dev", max_examples=20, **_COMMON)
settings.register_profile("thorough", max_examples=300, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

os.environ.setdefault("JAX_PLATFORMS", "cpu")
