"""The error hierarchy: one paragraph quoting the culprit, and an exit code per kind."""

from __future__ import annotations

from mlops_ray.errors import ConfigError, DataError, MlopsError, ServiceUnavailableError


def test_paragraph_puts_where_first_and_hint_last() -> None:
    err = DataError("file not found", where="data.source='x.csv'", hint="Check the path.")
    assert err.paragraph() == "data.source='x.csv': file not found Check the path."
    assert str(err) == err.paragraph()
    assert "\n" not in err.paragraph()


def test_paragraph_without_where() -> None:
    assert MlopsError("plain").paragraph() == "plain"


def test_config_errors_exit_2_others_exit_1() -> None:
    assert ConfigError("x").exit_code == 2
    assert DataError("x").exit_code == 1
    assert ServiceUnavailableError("x").exit_code == 1
    assert isinstance(ServiceUnavailableError("x"), MlopsError)
