"""The real client (python-saharaclient) against our API; rows checked in MariaDB."""

from __future__ import annotations

import uuid
from pathlib import Path

import pymysql
import pytest
from keystoneauth1 import session as ks_session
from oslo_config import cfg
from saharaclient.api.client import ClientV2

from harness.procs import Api


@pytest.fixture
def client(api: Api, keystone: ks_session.Session) -> ClientV2:
    return ClientV2(session=keystone, sahara_url=f"{api.url}/v2")


@pytest.fixture
def db(sahara_conf: Path):
    """A cursor on Sahara's MariaDB database, from the same [database] connection."""
    conf = cfg.ConfigOpts()
    conf.register_opt(cfg.StrOpt("connection"), group="database")
    conf(args=[], default_config_files=[str(sahara_conf)])
    from sqlalchemy.engine import make_url

    url = make_url(conf.database.connection)
    conn = pymysql.connect(host=url.host, user=url.username, password=url.password, database=url.database)
    conn.autocommit(True)
    yield conn.cursor()
    conn.close()


def rows(db, table: str, object_id: str) -> list[tuple]:
    db.execute(f"SELECT name FROM {table} WHERE id = %s", (object_id,))  # noqa: S608 (table is ours)
    return list(db.fetchall())


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_list_plugins(client: ClientV2) -> None:
    assert [p.name for p in client.plugins.list()] == ["fake"]


def test_data_source_lifecycle(client: ClientV2, db) -> None:
    name = unique("ds")
    ds = client.data_sources.create(name, "input", "hdfs", "hdfs://namenode/user/input")
    assert rows(db, "data_sources", ds.id) == [(name,)]
    assert name in [d.name for d in client.data_sources.list()]
    client.data_sources.update(ds.id, {"description": "updated"})
    assert client.data_sources.get(ds.id).description == "updated"
    client.data_sources.delete(ds.id)
    assert rows(db, "data_sources", ds.id) == []


def test_job_binary_and_job_template_lifecycle(client: ClientV2, db) -> None:
    extra = {"accesskey": "AK", "secretkey": "SK", "endpoint": "http://127.0.0.1:9000"}
    jb = client.job_binaries.create(unique("jb"), "s3://bucket/script.pig", extra=extra)
    assert rows(db, "job_binaries", jb.id) == [(jb.name,)]
    assert jb.name in [j.name for j in client.job_binaries.list()]
    client.job_binaries.update(jb.id, {"description": "updated"})
    assert client.job_binaries.get(jb.id).description == "updated"

    name = unique("jt")
    jt = client.job_templates.create(name, "Pig", mains=[jb.id])
    assert rows(db, "jobs", jt.id) == [(name,)]
    assert name in [j.name for j in client.job_templates.list()]
    client.job_templates.update(jt.id, description="updated")
    assert client.job_templates.get(jt.id).description == "updated"

    client.job_templates.delete(jt.id)
    client.job_binaries.delete(jb.id)
    assert rows(db, "jobs", jt.id) == [] and rows(db, "job_binaries", jb.id) == []
