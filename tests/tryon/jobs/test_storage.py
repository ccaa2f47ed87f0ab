"""Storage backends: S3 against moto's server over real HTTP, the local directory with signed URLs."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest
from botocore.config import Config

from tryon.jobs.settings import JobSettings
from tryon.jobs.storage import (
    LocalStorage,
    ObjectNotFound,
    S3Storage,
    StorageError,
    build_storage,
    input_key,
    lifecycle_configuration,
    result_key,
)


def s3_settings(endpoint: str, **overrides: object) -> JobSettings:
    values: dict[str, object] = {
        "storage_backend": "s3",
        "s3_endpoint_url": endpoint,
        "s3_bucket": "tryon-test",
        "s3_prefix": "jobs/",
        "s3_path_style": True,
        "s3_access_key_id": "testing",
        "s3_secret_access_key": "testing",
    }
    return JobSettings(**{**values, **overrides})


@pytest.fixture
def s3(s3_endpoint: str) -> Iterator[S3Storage]:
    storage = build_storage(s3_settings(s3_endpoint))
    assert isinstance(storage, S3Storage)
    storage.ensure_bucket()
    yield storage


def test_s3_put_get_url_delete(s3: S3Storage, s3_endpoint: str) -> None:
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(2000)
    s3.put(result_key("job1"), png, "image/png")
    s3.put(input_key("job1", "person"), b"person")
    s3.put(input_key("job2", "person"), b"other")
    assert s3.get(result_key("job1")) == png and s3.exists(result_key("job1"))
    # Stored under the prefix, path-style, with the content type.
    raw = s3.client.get_object(Bucket="tryon-test", Key="jobs/job1/result.png")
    assert raw["ContentType"] == "image/png"
    url = s3.url(result_key("job1"), 60)
    assert url.startswith(f"{s3_endpoint}/tryon-test/jobs/job1/result.png?")
    assert "X-Amz-Signature" in url and parse_qs(urlsplit(url).query)["X-Amz-Expires"] == ["60"]
    reply = httpx.get(url)  # plain HTTP, no credentials
    assert reply.status_code == 200 and reply.content == png
    assert s3.delete_prefix("job1/") == 2
    assert not s3.exists(result_key("job1")) and s3.get(input_key("job2", "person")) == b"other"
    with pytest.raises(ObjectNotFound):
        s3.get(result_key("job1"))
    with pytest.raises(ValueError):
        s3.put("../escape", b"x")


def test_s3_many_objects_deleted(s3: S3Storage) -> None:
    for index in range(1005):
        s3.client.put_object(Bucket="tryon-test", Key=f"jobs/big/{index}.bin", Body=b"")
    assert s3.delete_prefix("big") == 1005


def test_s3_presigned_for_public_endpoint(s3_endpoint: str) -> None:
    settings = s3_settings(s3_endpoint, s3_public_endpoint_url="https://files.example.com")
    storage = S3Storage.from_settings(settings)
    url = storage.url("job/result.png", 300)
    assert url.startswith("https://files.example.com/tryon-test/jobs/job/result.png?")
    assert "host" in parse_qs(urlsplit(url).query)["X-Amz-SignedHeaders"][0]


def test_s3_checksum_settings_sent(s3_endpoint: str) -> None:
    """No CRC checksum headers on upload (MinIO / R2 reject boto3's defaults)."""
    storage = S3Storage.from_settings(s3_settings(s3_endpoint))
    sent: list[dict[str, str]] = []
    storage.client.meta.events.register(
        "before-send.s3.PutObject", lambda request, **_: sent.append(dict(request.headers))
    )
    storage.ensure_bucket()
    storage.put("x/y.bin", b"data")
    assert sent and not any(name.lower().startswith("x-amz-checksum") for name in sent[0])
    assert storage.client.meta.config.request_checksum_calculation == "when_required"
    assert storage.client.meta.config.response_checksum_validation == "when_required"


def test_s3_errors_are_storage_errors(s3_endpoint: str) -> None:
    missing_bucket = S3Storage.from_settings(s3_settings(s3_endpoint, s3_bucket="does-not-exist"))
    with pytest.raises(StorageError) as error:
        missing_bucket.put("a/b", b"x")
    assert not isinstance(error.value, ObjectNotFound)
    from tryon.local_services import free_port

    down = boto3.client(
        "s3", endpoint_url=f"http://127.0.0.1:{free_port()}", region_name="us-east-1",
        aws_access_key_id="x", aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )  # fmt: skip
    with pytest.raises(StorageError):
        S3Storage(down, "b").get("a/b")


def test_s3_lifecycle_rule(s3: S3Storage) -> None:
    s3.apply_retention(2)
    rules = s3.client.get_bucket_lifecycle_configuration(Bucket="tryon-test")["Rules"]
    assert rules[0]["Expiration"]["Days"] == 2 and rules[0]["Filter"]["Prefix"] == "jobs/"
    assert lifecycle_configuration("p/", 0)["Rules"][0]["Expiration"]["Days"] == 1


def test_local_put_get_delete(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path, b"k" * 32, "/api/files")
    storage.put("job/inputs/person.png", b"one")
    storage.put("job/inputs/person.png", b"two")  # an overwrite replaces the whole file
    assert storage.get("job/inputs/person.png") == b"two" and storage.exists("job/inputs/person.png")
    assert not [p for p in (tmp_path / "job/inputs").iterdir() if p.name.startswith(".tmp")]
    assert storage.delete_prefix("job/") == 1 and not storage.exists("job/inputs/person.png")
    with pytest.raises(ObjectNotFound):
        storage.get("job/inputs/person.png")
    for bad in ("../x", "/etc/passwd", "a/../../b", "a//b", "", "a/.."):
        with pytest.raises(ValueError):
            storage.put(bad, b"x")


def test_local_signed_urls_expire_and_resist_tampering(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path, b"secret-key", "/api/files/")
    url = storage.url("job/result.png", 60)
    parts = urlsplit(url)
    assert parts.path == "/api/files/job/result.png"
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    expires, signature = int(query["expires"]), query["signature"]
    assert abs(expires - (time.time() + 60)) < 2
    assert storage.verify_signature("job/result.png", expires, signature)
    assert not storage.verify_signature("job/result.png", expires, signature, now=expires + 1)  # expired
    assert not storage.verify_signature("job/result.png", expires + 3600, signature)  # extended expiry
    assert not storage.verify_signature("job/inputs/person.png", expires, signature)  # other key
    tampered = signature[:-1] + ("1" if signature.endswith("0") else "0")  # always a different signature
    assert not storage.verify_signature("job/result.png", expires, tampered)
    assert not storage.verify_signature("job/result.png", "soon", signature)
    assert not storage.verify_signature("job/result.png", expires, "é" + signature[1:])  # non-ASCII: no crash
    assert not storage.verify_signature("job/résult.png", expires, signature)
    assert not storage.verify_signature("../result.png", expires, signature)
    other = LocalStorage(tmp_path / "other", b"another-key", "/api/files")
    assert not other.verify_signature("job/result.png", expires, signature)
    short = storage.url("job/result.png", 1)
    short_query = {name: values[0] for name, values in parse_qs(urlsplit(short).query).items()}
    time.sleep(2.1)
    assert not storage.verify_signature("job/result.png", short_query["expires"], short_query["signature"])


def test_local_default_key_shared_through_directory(tmp_path: Path) -> None:
    first = build_storage(JobSettings(storage_dir=tmp_path))
    second = LocalStorage(tmp_path, None, "/api/files")
    assert isinstance(first, LocalStorage) and len(first.signing_key) == 32
    assert first.signing_key == second.signing_key
    url = first.url("j/result.png", 60)
    query = {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}
    assert second.verify_signature("j/result.png", query["expires"], query["signature"])


def test_local_sweeper_deletes_expired_jobs(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path, b"k", "/f")
    storage.put("old/result.png", b"x")
    storage.put("old/inputs/person.png", b"x")
    storage.put("new/result.png", b"x")
    past = time.time() - 7200
    for path in (tmp_path / "old").rglob("*"):
        os.utime(path, (past, past))
    assert storage.sweep(3600) == 1
    assert not (tmp_path / "old").exists() and storage.exists("new/result.png")
    assert (tmp_path / ".signing-key").exists() or storage.signing_key == b"k"
    assert storage.sweep(3600, now=time.time() + 7200) == 1 and not storage.exists("new/result.png")
