"""The hostile-file helpers of tests/bad_inputs, for the hostile cases that live beside the export code."""

from tests.bad_inputs.conftest import untouched_outside  # noqa: F401  (a fixture)
