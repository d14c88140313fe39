import os

from hypothesis import settings

settings.register_profile("default", deadline=None)
settings.register_profile("ci-long", deadline=None, max_examples=200)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
