"""S3 blob store on the `minio` client: versioned bucket with Object Lock, retention and legal hold.

The minio client is synchronous (urllib3); its calls run in a worker thread, except the hot path, `put`: its
conditional PUT goes out from the event loop over pyreqwest (`spvhub_common.httpclient`), signed by `_PutSigner`
(a thread hop plus urllib3 cost about 2 ms of CPU per object, several times the async request). Keys are
deterministic (derived from ANAF identifiers) so a retried write lands on the same key.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import urllib3
from minio import Minio
from minio.commonconfig import COMPLIANCE, ENABLED, GOVERNANCE
from minio.credentials.credentials import Credentials
from minio.error import S3Error
from minio.helpers import quote as minio_quote
from minio.objectlockconfig import DAYS, ObjectLockConfig
from minio.retention import Retention
from minio.time import to_iso8601utc
from minio.versioningconfig import VersioningConfig
from pyreqwest.client import Client

from spvhub_common.httpclient import LazyClient, RequestFault, client_builder


@dataclass(frozen=True)
class BlobInfo:
    key: str
    size: int
    sha256: str | None
    content_type: str
    version_id: str | None


class BlobStore(Protocol):
    async def put(self, key: str, data: bytes, content_type: str = "application/octet-stream", *,
                  retain_until: datetime | None = None, legal_hold: bool = False) -> BlobInfo: ...
    async def get(self, key: str) -> bytes: ...
    async def exists(self, key: str) -> bool: ...
    async def stat(self, key: str) -> BlobInfo | None: ...
    def stream(self, key: str, chunk_size: int = 65536) -> AsyncIterator[bytes]: ...


class BlobNotFound(KeyError):
    pass


class RetentionConflict(Exception):
    """The key holds a locked object with other content: the archive never silently changes."""


class BlobStoreError(Exception):
    """The object store refused a request (4xx, or 5xx after the retries)."""

    def __init__(self, status: int, code: str, key: str) -> None:
        super().__init__(f"object store answered {status} {code} for {key}")
        self.status, self.code, self.key = status, code, key


def _s3_code(body: bytes) -> str:
    """The <Code> of an S3 error document (never its other fields: they can echo request details)."""
    start, end = body.find(b"<Code>"), body.find(b"</Code>")
    return body[start + 6:end].decode(errors="replace")[:64] if 0 <= start < end else "Unknown"


_SPACES = re.compile(" +")


class _PutSigner:
    """AWS Signature V4 for the store's own PUTs, as minio's signer computes it (canonical request of the signed
    headers, empty query, the payload's SHA-256), with the per-day signing key derived once rather than by four
    HMACs per request: at one PUT per archived invoice minio's general-purpose path cost ~0.18 ms a request."""

    def __init__(self, scheme: str, netloc: str, path_prefix: str, region: str) -> None:
        self.scheme, self.netloc, self.path_prefix, self.region = scheme, netloc, path_prefix, region
        self._keys: dict[tuple[str, str], bytes] = {}

    @classmethod
    def for_bucket(cls, client: Minio, bucket: str, region: str) -> _PutSigner:
        """Object URLs as minio builds them (path or virtual-host style): built once for a probe name."""
        probe = client._base_url.build(method="PUT", region=region, bucket_name=bucket,  # noqa: SLF001
                                       object_name="o")
        if not probe.path.endswith("/o"):
            raise ValueError(f"unexpected object URL shape {probe.path!r}")
        return cls(probe.scheme, probe.netloc, probe.path[:-1], region)

    def _signing_key(self, secret: str, day: str) -> bytes:
        k = self._keys.get((secret, day))
        if k is None:
            k = hmac.new(f"AWS4{secret}".encode(), day.encode(), hashlib.sha256).digest()
            for part in (self.region, "s3", "aws4_request"):
                k = hmac.new(k, part.encode(), hashlib.sha256).digest()
            self._keys = {(secret, day): k}  # one day (and one secret) at a time
        return k

    def sign(self, key: str, headers: dict[str, str], length: int, digest: str, creds: Credentials | None, *,
             amz_date: str | None = None) -> tuple[str, dict[str, str]]:
        """The URL and the headers (with Authorization when there are credentials) of a PUT of `key`."""
        path = self.path_prefix + minio_quote(key)
        amz_date = amz_date or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        signed = {**headers, "Host": self.netloc, "Content-Length": str(length), "x-amz-content-sha256": digest,
                  "x-amz-date": amz_date}
        url = f"{self.scheme}://{self.netloc}{path}"
        if creds is None:
            return url, signed
        if creds.session_token:
            signed["X-Amz-Security-Token"] = creds.session_token
        canon = sorted((k.lower(), _SPACES.sub(" ", v).strip()) for k, v in signed.items())
        names = ";".join(k for k, _ in canon)
        request = "PUT\n{}\n\n{}\n\n{}\n{}".format(path, "\n".join(f"{k}:{v}" for k, v in canon), names, digest)
        scope = f"{amz_date[:8]}/{self.region}/s3/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(request.encode()).hexdigest()}"
        signature = hmac.new(self._signing_key(creds.secret_key, amz_date[:8]), to_sign.encode(),
                             hashlib.sha256).hexdigest()
        signed["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, "
                                   f"SignedHeaders={names}, Signature={signature}")
        return url, signed


class S3BlobStore:
    def __init__(self, endpoint: str, access_key: str, secret_key: str, bucket: str, *, secure: bool = False,
                 default_retention_days: int = 3650, mode: str = COMPLIANCE, pool_size: int = 10) -> None:
        # one pooled connection per worker thread that may call the store at once
        http = urllib3.PoolManager(maxsize=pool_size, timeout=urllib3.Timeout(connect=10, read=120),
                                   retries=urllib3.Retry(total=5, backoff_factor=0.2,
                                                         status_forcelist=[500, 502, 503, 504]))
        self.client = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure, http_client=http)
        self.bucket = bucket
        self.default_retention_days = default_retention_days
        self.mode = mode
        self.pool_size = pool_size
        self._signer: _PutSigner | None = None
        self._http = LazyClient(self._build_http)
        self.requests_sent = 0  # requests of the async path (observability and tests)

    def _build_http(self) -> Client:
        return (client_builder().max_connections(max(self.pool_size, 32)).connect_timeout(timedelta(seconds=10))
                .read_timeout(timedelta(seconds=120)).build())

    async def aclose(self) -> None:
        await self._http.aclose()

    async def ensure_bucket(self, object_lock: bool = True) -> None:
        def _do() -> None:
            if not self.client.bucket_exists(self.bucket):
                try:
                    self.client.make_bucket(self.bucket, object_lock=object_lock)
                except S3Error as e:
                    if e.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise
                self.client.set_bucket_versioning(self.bucket, VersioningConfig(ENABLED))
        await asyncio.to_thread(_do)

    def default_retain_until(self) -> datetime:
        return datetime.now(UTC) + timedelta(days=self.default_retention_days)

    async def put(self, key: str, data: bytes, content_type: str = "application/octet-stream", *,
                  retain_until: datetime | None = None, legal_hold: bool = False) -> BlobInfo:
        """Write `data` under `key`: one conditional PUT (`If-None-Match: *`) when the key is new. When it exists,
        the same bytes are a harmless retry; other bytes raise RetentionConflict when `retain_until` is asked
        (an archive never changes) and replace the object otherwise."""
        digest = hashlib.sha256(data).hexdigest()
        retention = Retention(self.mode, retain_until) if retain_until else None

        version = await self._put_if_absent(key, data, content_type, digest, retention, legal_hold)
        if version is not None:
            return BlobInfo(key, len(data), digest, content_type, version or None)

        def _do() -> BlobInfo:
            existing = self._stat_sync(key)
            if existing is not None and existing.sha256 == digest:
                return existing  # the same bytes are already there: a retry is harmless
            if existing is not None and retain_until is not None:
                raise RetentionConflict(f"{key} already archived with different content")
            res = self.client.put_object(
                self.bucket, key, io.BytesIO(data), len(data), content_type=content_type,
                metadata={"x-amz-meta-sha256": digest}, retention=retention, legal_hold=legal_hold)
            return BlobInfo(key, len(data), digest, content_type, res.version_id)
        return await asyncio.to_thread(_do)

    async def _put_if_absent(self, key: str, data: bytes, content_type: str, digest: str,
                             retention: Retention | None, legal_hold: bool) -> str | None:
        """PutObject with `If-None-Match: *` (S3 conditional write). Returns the version id written ("" when the
        bucket is unversioned), None when the key already exists (412 PreconditionFailed). minio-py's public
        put_object cannot send that header, so the request is built here: the object URL from minio's own URL
        builder (once per store), the headers minio's `genheaders` would write, SigV4 by `_PutSigner` (checked against
        minio's signer in the tests), sent with pyreqwest. Connection errors and 5xx answers are retried (as the
        urllib3 pool does for the other calls): a PUT that landed before its answer was lost then meets 412 and
        the caller's digest check."""
        if self._signer is None:
            region = await asyncio.to_thread(self.client._get_region, self.bucket)  # noqa: SLF001
            self._signer = _PutSigner.for_bucket(self.client, self.bucket, region)
        headers = {"x-amz-meta-sha256": digest, "Content-Type": content_type, "If-None-Match": "*"}
        if retention is not None and retention.mode:
            headers["x-amz-object-lock-mode"] = retention.mode
            headers["x-amz-object-lock-retain-until-date"] = to_iso8601utc(retention.retain_until_date) or ""
        if legal_hold:
            headers["x-amz-object-lock-legal-hold"] = "ON"
        creds = self.client._provider.retrieve() if self.client._provider else None  # noqa: SLF001
        attempt = 0
        while True:
            attempt += 1
            url, signed = self._signer.sign(key, headers, len(data), digest, creds)
            del signed["Content-Length"]  # signed as the length of `data`, which is what the client sends
            try:
                self.requests_sent += 1
                resp = await self._http.get().put(url).headers(signed).body_bytes(data).build().send()
                body = bytes(await resp.bytes())
            except RequestFault:
                if attempt >= 6:
                    raise
            else:
                if resp.status == 412:
                    return None
                if resp.status < 300:
                    return resp.headers.get("x-amz-version-id") or ""
                if resp.status < 500 or attempt >= 6:
                    raise BlobStoreError(resp.status, _s3_code(body), key)
            await asyncio.sleep(0.2 * 2 ** (attempt - 1))

    def _stat_sync(self, key: str) -> BlobInfo | None:
        try:
            st = self.client.stat_object(self.bucket, key)
        except S3Error as e:
            if e.code in ("NoSuchKey", "NoSuchObject", "NoSuchVersion"):
                return None
            raise
        meta = {k.lower(): v for k, v in (st.metadata or {}).items()}
        return BlobInfo(key, st.size or 0, meta.get("x-amz-meta-sha256"), st.content_type or "", st.version_id)

    async def stat(self, key: str) -> BlobInfo | None:
        return await asyncio.to_thread(self._stat_sync, key)

    async def exists(self, key: str) -> bool:
        return await self.stat(key) is not None

    async def get(self, key: str) -> bytes:
        def _do() -> bytes:
            try:
                resp = self.client.get_object(self.bucket, key)
            except S3Error as e:
                if e.code in ("NoSuchKey", "NoSuchObject"):
                    raise BlobNotFound(key) from e
                raise
            try:
                return resp.read()
            finally:
                resp.close()
                resp.release_conn()
        return await asyncio.to_thread(_do)

    async def stream(self, key: str, chunk_size: int = 65536) -> AsyncIterator[bytes]:
        resp = await asyncio.to_thread(self.client.get_object, self.bucket, key)
        try:
            while True:
                chunk = await asyncio.to_thread(resp.read, chunk_size)
                if not chunk:
                    break
                yield chunk
        finally:
            resp.close()
            resp.release_conn()

    async def delete(self, key: str, version_id: str | None = None) -> None:
        await asyncio.to_thread(self.client.remove_object, self.bucket, key, version_id=version_id)

    async def set_legal_hold(self, key: str, on: bool) -> None:
        fn = self.client.enable_object_legal_hold if on else self.client.disable_object_legal_hold
        await asyncio.to_thread(fn, self.bucket, key)


class InMemoryBlobStore:
    """Fake for unit tests; honours retention like the real store (a locked key cannot be overwritten)."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str, datetime | None]] = {}

    async def put(self, key: str, data: bytes, content_type: str = "application/octet-stream", *,
                  retain_until: datetime | None = None, legal_hold: bool = False) -> BlobInfo:
        digest = hashlib.sha256(data).hexdigest()
        if key in self.objects:
            old, _, locked = self.objects[key]
            if hashlib.sha256(old).hexdigest() == digest:
                return BlobInfo(key, len(old), digest, content_type, None)
            if locked is not None and retain_until is not None:
                raise RetentionConflict(f"{key} already archived with different content")
        self.objects[key] = (data, content_type, retain_until)
        return BlobInfo(key, len(data), digest, content_type, None)

    async def get(self, key: str) -> bytes:
        if key not in self.objects:
            raise BlobNotFound(key)
        return self.objects[key][0]

    async def exists(self, key: str) -> bool:
        return key in self.objects

    async def stat(self, key: str) -> BlobInfo | None:
        if key not in self.objects:
            return None
        d, ct, _ = self.objects[key]
        return BlobInfo(key, len(d), hashlib.sha256(d).hexdigest(), ct, None)

    async def stream(self, key: str, chunk_size: int = 65536) -> AsyncIterator[bytes]:
        data = await self.get(key)
        for i in range(0, len(data), chunk_size):
            yield data[i:i + chunk_size]


__all__ = ["BlobInfo", "BlobNotFound", "BlobStore", "COMPLIANCE", "DAYS", "GOVERNANCE", "InMemoryBlobStore",
           "ObjectLockConfig", "RetentionConflict", "S3BlobStore"]
