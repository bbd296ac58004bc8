"""Router fixtures live in tests/router_fixtures.py (a plugin of tests/conftest.py, shared by
every test folder); these names are re-exported for imports written against this module."""

from tests.router_fixtures import (  # noqa: F401
    ADMIN_KEY,
    ROBOT_KEY,
    ContractFiles,
    RedisServer,
    RouterFactory,
    RouterProcess,
    act_body,
    calibration_table,
    contract_dict,
)
