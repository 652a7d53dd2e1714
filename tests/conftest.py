import os

from hypothesis import HealthCheck, settings

# CI runs few examples; `HYPOTHESIS_PROFILE=thorough pytest` runs many.
settings.register_profile("ci", max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
settings.register_profile("dev", max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
settings.register_profile("thorough", max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

os.environ.setdefault("JAX_PLATFORMS", "cpu")
