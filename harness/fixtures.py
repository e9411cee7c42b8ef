"""pytest fixtures that every suite on the local stack shares (tests/ and
cluster/ import them into their conftest.py): Keystone's credentials, a
session and a token. Each suite's conftest defines `stack`, its own run."""

from __future__ import annotations

import pytest
from keystoneauth1 import session as ks_session

from harness.stack import Stack, keystone_session, read_openrc


@pytest.fixture(scope="session")
def openrc(stack: Stack) -> dict[str, str]:
    return read_openrc()


@pytest.fixture(scope="session")
def keystone(openrc: dict[str, str]) -> ks_session.Session:
    return keystone_session(openrc)


@pytest.fixture(scope="session")
def token(keystone: ks_session.Session) -> str:
    return keystone.get_token()
