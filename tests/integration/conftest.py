"""conftest.py - pytest settings shared by the integration tests."""


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a scenario that takes seconds; -m 'not slow' leaves it out")
