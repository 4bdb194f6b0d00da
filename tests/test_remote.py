"""Beyond one machine: a local Dask cluster started here, and S3 through a moto server on loopback."""

from __future__ import annotations

import json
import os
import socket

import pytest
from conftest import SAMPLE_LOGS

from analyzer.cli import OK, main

pytestmark = pytest.mark.slow  # a Dask cluster and an S3 server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dask_cluster_gives_the_same_results_as_local(tmp_path):
    distributed = pytest.importorskip("distributed")
    local = tmp_path / "local.json"
    remote = tmp_path / "dask.json"
    assert main(["report", str(SAMPLE_LOGS), "--no-html", "--json", str(local), "-q"]) == OK
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None, processes=True
    ) as cluster:
        assert (
            main(
                [
                    "report",
                    str(SAMPLE_LOGS),
                    "-o",
                    str(tmp_path / "out"),
                    "--json",
                    str(remote),
                    "-q",
                    "--scheduler",
                    cluster.scheduler_address,
                ]
            )
            == OK
        )
    assert json.loads(local.read_text()) == json.loads(remote.read_text())
    assert (tmp_path / "out" / "index.html").exists()


def test_unreachable_scheduler_is_one_line_and_exit_two(capsys):
    pytest.importorskip("distributed")
    rc = main(
        ["report", str(SAMPLE_LOGS), "--no-html", "-q", "--scheduler", f"tcp://127.0.0.1:{_free_port()}"]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "cannot reach the Dask scheduler" in err and "Traceback" not in err


@pytest.fixture
def s3_bucket(monkeypatch):
    """A moto S3 server on 127.0.0.1, with the sample runs uploaded under s3://logs/sweep/."""
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "S3_ENDPOINT": endpoint,
        "AWS_ENDPOINT_URL": endpoint,
    }.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket="logs")
    for path in SAMPLE_LOGS.rglob("events.out.tfevents.*"):
        client.upload_file(str(path), "logs", f"sweep/{path.relative_to(SAMPLE_LOGS).as_posix()}")
    yield "s3://logs/sweep"
    server.stop()


def test_s3_folder_reports_like_the_local_one(s3_bucket, tmp_path):
    local = tmp_path / "local.json"
    remote = tmp_path / "s3.json"
    assert main(["report", str(SAMPLE_LOGS), "--no-html", "--json", str(local), "-q"]) == OK
    assert main(["report", s3_bucket, "-o", str(tmp_path / "out"), "--json", str(remote), "-q"]) == OK
    local_runs = {r["run"]: r for r in json.loads(local.read_text())["runs"]}
    remote_runs = {r["run"]: r for r in json.loads(remote.read_text())["runs"]}
    assert sorted(remote_runs) == sorted(local_runs)
    for name, run in remote_runs.items():
        assert run["path"].startswith("s3://logs/sweep/")
        assert {k: v for k, v in run.items() if k != "path"} == {
            k: v for k, v in local_runs[name].items() if k != "path"
        }


def test_missing_bucket_is_a_problem_not_a_crash(s3_bucket, capsys):
    rc = main(["report", "s3://no-such-bucket/x", "--no-html", "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "s3://no-such-bucket/x" in err and "Traceback" not in err
    assert os.environ["S3_ENDPOINT"].startswith("http://127.0.0.1:")
