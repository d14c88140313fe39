"""Hypothesis profiles.

default: deterministic (``derandomize``), so that the suite passes or fails the same way on every run and CI is
not at the mercy of a lucky draw; ``HYPOTHESIS_PROFILE=dev`` draws fresh random examples each run (use it while
developing a kernel); ``HYPOTHESIS_PROFILE=ci-long`` draws many more, randomly.
"""
import os

from hypothesis import settings

settings.register_profile("default", deadline=None, derandomize=True)
settings.register_profile("dev", deadline=None)
settings.register_profile("ci-long", deadline=None, max_examples=200)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
