"""Job inputs and results: S3 (boto3: AWS, MinIO, R2, ...) or a local directory, behind one interface.

Keys are logical and per job: ``<job id>/inputs/person.png``, ``<job id>/inputs/garment.png``,
``<job id>/result.png`` (:func:`input_key`, :func:`result_key`); deleting a job deletes its prefix.

* :class:`S3Storage` adds the configured key prefix, talks to ``s3_endpoint_url`` and presigns GET URLs
  with a second client configured for ``s3_public_endpoint_url``: SigV4 signs the Host header, so a URL
  signed for an internal MinIO address cannot be rewritten to the public one afterwards. Checksums are
  computed and validated only "when required": boto3 >= 1.36 otherwise adds CRC headers that MinIO and R2
  (and older S3-compatible stores) reject. Retention: a bucket lifecycle rule expiring objects under the
  prefix (:func:`lifecycle_configuration`; docs/ORCHESTRATOR.md shows how to apply it).
* :class:`LocalStorage` keeps files under a directory shared by the gateway and the worker. Its URLs point
  at the gateway's file route and carry an expiry and an HMAC-SHA256 signature over key and expiry, which
  the gateway checks with :meth:`LocalStorage.verify_signature`. :meth:`LocalStorage.sweep` deletes jobs
  whose files are older than the retention (the worker runs it periodically).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from tryon.jobs.settings import JobSettings

log = logging.getLogger(__name__)

#: Logical keys: job id, then path segments of URL-safe characters; never "..", never absolute.
_KEY = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*(/[A-Za-z0-9_-][A-Za-z0-9_.-]*)*$")


class StorageError(RuntimeError):
    """The store failed (network, permissions, full disk): usually transient, the worker retries."""


class ObjectNotFound(StorageError, KeyError):
    """No object under this key (never written, deleted, or expired): retrying does not help."""


def input_key(job_id: str, name: str) -> str:
    return f"{job_id}/inputs/{name}.png"


def result_key(job_id: str) -> str:
    return f"{job_id}/result.png"


def job_prefix(job_id: str) -> str:
    return f"{job_id}/"


def check_key(key: str) -> str:
    if not _KEY.match(key) or ".." in key.split("/"):
        raise ValueError(f"invalid storage key {key!r}")
    return key


class Storage(Protocol):
    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None: ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def delete_prefix(self, prefix: str) -> int: ...

    def url(self, key: str, expires_s: int) -> str: ...


# --- S3 -----------------------------------------------------------------------------------------------


def lifecycle_configuration(prefix: str, days: int) -> dict[str, Any]:
    """A bucket lifecycle rule deleting objects under ``prefix`` ``days`` after creation (the retention).

    Apply once per bucket: ``s3.put_bucket_lifecycle_configuration(Bucket=..., LifecycleConfiguration=...)``
    (or ``mc ilm rule add`` on MinIO). S3 counts whole days, so choose days >= the job TTL.
    """
    return {
        "Rules": [
            {
                "ID": "tryon-job-retention",
                "Filter": {"Prefix": prefix},
                "Status": "Enabled",
                "Expiration": {"Days": max(1, int(days))},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
            }
        ]
    }


class S3Storage:
    def __init__(self, client: Any, bucket: str, prefix: str = "", presign_client: Any | None = None) -> None:
        self.client = client
        self.presign_client = presign_client or client
        self.bucket = bucket
        self.prefix = prefix

    @classmethod
    def from_settings(cls, settings: JobSettings) -> S3Storage:
        import boto3
        from botocore.config import Config

        config = Config(
            region_name=settings.s3_region,
            signature_version="s3v4",
            s3={"addressing_style": "path" if settings.s3_path_style else "auto"},
            # boto3 >= 1.36 adds CRC checksums to every upload and validates them on download by default;
            # MinIO (older releases), R2 and other S3-compatible stores reject or mangle them.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=5,
            read_timeout=30,
        )
        credentials: dict[str, str] = {}
        if settings.s3_access_key_id:
            credentials = {
                "aws_access_key_id": settings.s3_access_key_id,
                "aws_secret_access_key": settings.s3_secret_access_key.get_secret_value(),
            }
        session = boto3.session.Session()
        client = session.client(
            "s3", endpoint_url=settings.s3_endpoint_url or None, config=config, **credentials
        )
        public = settings.s3_public_endpoint_url or settings.s3_endpoint_url
        presign_client = session.client("s3", endpoint_url=public or None, config=config, **credentials)
        return cls(client, settings.s3_bucket, settings.s3_prefix, presign_client)

    def _object(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _errors(self, action: str, key: str, error: Exception) -> StorageError:
        from botocore.exceptions import ClientError

        if isinstance(error, ClientError):
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in {"404", "NoSuchKey", "NotFound"}:
                return ObjectNotFound(f"{key}: no such object in s3://{self.bucket}/{self.prefix}")
        return StorageError(f"s3 {action} {key}: {error}")

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        name = self._object(key)
        try:
            self.client.put_object(Bucket=self.bucket, Key=name, Body=data, ContentType=content_type)
        except Exception as error:
            raise self._errors("put", key, error) from error

    def get(self, key: str) -> bytes:
        name = self._object(key)
        try:
            reply = self.client.get_object(Bucket=self.bucket, Key=name)
            return bytes(reply["Body"].read())
        except Exception as error:
            raise self._errors("get", key, error) from error

    def exists(self, key: str) -> bool:
        name = self._object(key)
        try:
            self.client.head_object(Bucket=self.bucket, Key=name)
            return True
        except Exception as error:
            failure = self._errors("head", key, error)
            if isinstance(failure, ObjectNotFound):
                return False
            raise failure from error

    def delete_prefix(self, prefix: str) -> int:
        full = self.prefix + check_key(prefix.rstrip("/")) + "/"
        deleted = 0
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                objects = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if objects:  # a page holds at most 1000 keys, DeleteObjects' limit
                    self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})
                    deleted += len(objects)
        except Exception as error:
            raise self._errors("delete", prefix, error) from error
        return deleted

    def url(self, key: str, expires_s: int) -> str:
        return str(
            self.presign_client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": self._object(key)},
                ExpiresIn=int(expires_s),
            )
        )

    def ensure_bucket(self) -> None:
        """Create the bucket when missing (local stacks and tests; production buckets are provisioned)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception:
            self.client.create_bucket(Bucket=self.bucket)

    def apply_retention(self, days: int) -> None:
        self.client.put_bucket_lifecycle_configuration(
            Bucket=self.bucket, LifecycleConfiguration=lifecycle_configuration(self.prefix, days)
        )


# --- Local directory ----------------------------------------------------------------------------------


def _signing_key_file(root: Path) -> bytes:
    """The directory's own random key, created once (atomically) and shared by every process using it."""
    path = root / ".signing-key"
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    root.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=root, prefix=".signing-key.")
    try:
        os.write(fd, secrets.token_hex(32).encode())
        os.close(fd)
        os.link(tmp, path)  # fails if another process won the race: then use theirs
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    return bytes.fromhex(path.read_text().strip())


class LocalStorage:
    """Files under ``root``; URLs ``<public_base_url>/<key>?expires=<unix s>&signature=<hex>``."""

    def __init__(self, root: str | Path, signing_key: bytes | str | None, public_base_url: str) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        key = signing_key.encode() if isinstance(signing_key, str) else signing_key
        self.signing_key = key or _signing_key_file(self.root)
        self.public_base_url = public_base_url.rstrip("/")

    def path(self, key: str) -> Path:
        """The file of ``key`` (for the gateway's file route, after :meth:`verify_signature`)."""
        return self.root / check_key(key)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        path = self.path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename: a reader never sees a partial file, a rewrite replaces the whole file.
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as file:
                    file.write(data)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as error:
            raise StorageError(f"local put {key}: {error}") from error

    def get(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError as error:
            raise ObjectNotFound(f"{key}: no such file under {self.root}") from error
        except OSError as error:
            raise StorageError(f"local get {key}: {error}") from error

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete_prefix(self, prefix: str) -> int:
        directory = self.path(prefix.rstrip("/"))
        if not directory.is_dir():
            return 0
        count = sum(1 for item in directory.rglob("*") if item.is_file())
        shutil.rmtree(directory, ignore_errors=True)
        return count

    def _signature(self, key: str, expires: int) -> str:
        message = f"{key}\n{expires}".encode()
        return hmac.new(self.signing_key, message, hashlib.sha256).hexdigest()

    def url(self, key: str, expires_s: int) -> str:
        expires = int(time.time()) + int(expires_s)
        query = urlencode({"expires": expires, "signature": self._signature(check_key(key), expires)})
        return f"{self.public_base_url}/{quote(key)}?{query}"

    def verify_signature(
        self, key: str, expires: int | str, signature: str, *, now: float | None = None
    ) -> bool:
        """True when ``signature`` is this store's for ``key`` and ``expires`` has not passed."""
        try:
            check_key(key)
            expires = int(expires)
        except (TypeError, ValueError):
            return False
        if expires < (time.time() if now is None else now):
            return False
        # Bytes: compare_digest refuses str with non-ASCII characters (a forged query may hold any).
        given = str(signature).encode("utf-8", "surrogateescape")
        return hmac.compare_digest(self._signature(key, expires).encode(), given)

    def sweep(self, max_age_s: float, *, now: float | None = None) -> int:
        """Delete each job directory whose newest file is older than ``max_age_s``; returns how many."""
        cutoff = (time.time() if now is None else now) - max_age_s
        removed = 0
        for directory in self.root.iterdir():
            if directory.name.startswith(".") or not directory.is_dir():
                continue
            try:
                newest = max(
                    (item.stat().st_mtime for item in directory.rglob("*") if item.is_file()),
                    default=directory.stat().st_mtime,
                )
            except FileNotFoundError:
                continue  # removed meanwhile
            if newest < cutoff:
                shutil.rmtree(directory, ignore_errors=True)
                removed += 1
        return removed


def start_sweeper(storage: LocalStorage, max_age_s: float, interval_s: float) -> threading.Event:
    """Run :meth:`LocalStorage.sweep` every ``interval_s`` in a daemon thread; set the event to stop."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_s):
            try:
                removed = storage.sweep(max_age_s)
                if removed:
                    log.info("storage sweeper removed %d expired job(s)", removed)
            except Exception:
                log.exception("storage sweep failed")

    threading.Thread(target=loop, name="tryon-storage-sweeper", daemon=True).start()
    return stop


def build_storage(settings: JobSettings) -> S3Storage | LocalStorage:
    if settings.storage_backend == "s3":
        return S3Storage.from_settings(settings)
    return LocalStorage(
        settings.storage_dir, settings.signing_key.get_secret_value() or None, settings.files_base_url
    )
