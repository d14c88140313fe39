"""README.md states the commands a newcomer runs; CI (.ci/run) must run exactly the README's test command."""
import pathlib

ROOT = pathlib.Path(__file__).parents[1]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci in (ROOT / "README.md").read_text(), f"README.md does not contain the CI command:\n{ci}"
