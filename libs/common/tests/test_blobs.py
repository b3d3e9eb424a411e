"""The S3 blob store against the real MinIO: Object Lock retention, idempotent rewrites, legal hold."""
from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from minio.error import S3Error
from spvhub_common.blobs import BlobStoreError, InMemoryBlobStore, RetentionConflict, S3BlobStore, _PutSigner
from spvhub_devtools.testing import STACK


@pytest.fixture
async def store(minio_up):
    s = S3BlobStore(f"127.0.0.1:{STACK['SPVHUB_MINIO_PORT']}", STACK["SPVHUB_MINIO_USER"],
                    STACK["SPVHUB_MINIO_PASSWORD"], f"test-{uuid.uuid4().hex[:12]}")
    await s.ensure_bucket(object_lock=True)
    yield s
    await s.aclose()


@pytest.fixture(params=["minio", "memory"])
async def any_store(request, minio_up):
    if request.param == "memory":
        yield InMemoryBlobStore()
        return
    s = S3BlobStore(f"127.0.0.1:{STACK['SPVHUB_MINIO_PORT']}", STACK["SPVHUB_MINIO_USER"],
                    STACK["SPVHUB_MINIO_PASSWORD"], f"test-{uuid.uuid4().hex[:12]}")
    await s.ensure_bucket()
    yield s
    await s.aclose()


async def test_object_under_compliance_retention_cannot_be_deleted(store):
    until = datetime.now(UTC) + timedelta(days=1)
    info = await store.put("efactura/123/1.zip", b"signed original", "application/zip", retain_until=until)
    assert info.version_id
    with pytest.raises(S3Error) as exc:
        await store.delete("efactura/123/1.zip", version_id=info.version_id)
    # MinIO answers InvalidRequest ("Object is WORM protected"), AWS AccessDenied: either way, refused
    assert exc.value.code in ("AccessDenied", "InvalidRequest")
    assert await store.get("efactura/123/1.zip") == b"signed original"


async def test_rewriting_same_key_with_same_content_is_harmless(store):
    until = datetime.now(UTC) + timedelta(days=1)
    first = await store.put("k/same.zip", b"abc", retain_until=until)
    again = await store.put("k/same.zip", b"abc", retain_until=until)
    assert again.version_id == first.version_id  # no second version was written
    versions = list(store.client.list_objects(store.bucket, prefix="k/same.zip", include_version=True))
    assert len(versions) == 1


async def test_new_key_costs_one_request_and_a_mutable_key_can_be_replaced(store):
    sent: list[str] = []
    real = store.client._url_open

    def counting(method, *args, **kwargs):
        sent.append(method)
        return real(method, *args, **kwargs)

    store.client._url_open = counting
    await store.put("k/warm.zip", b"warm")  # the first put learns the bucket's region
    sent.clear()
    before = store.requests_sent
    await store.put("k/new.zip", b"first", retain_until=datetime.now(UTC) + timedelta(days=1))
    assert store.requests_sent - before == 1 and sent == []  # one conditional PUT, no stat before it
    assert await store.get("k/new.zip") == b"first"
    await store.put("k/cache.pdf", b"v1", "application/pdf")
    await store.put("k/cache.pdf", b"v2", "application/pdf")  # no retention asked: replaced
    assert await store.get("k/cache.pdf") == b"v2"
    assert (await store.stat("k/cache.pdf")).sha256 == hashlib.sha256(b"v2").hexdigest()


async def test_locked_key_refuses_different_content(store):
    until = datetime.now(UTC) + timedelta(days=1)
    await store.put("k/locked.zip", b"original", retain_until=until)
    with pytest.raises(RetentionConflict):
        await store.put("k/locked.zip", b"tampered", retain_until=until)
    assert await store.get("k/locked.zip") == b"original"


async def test_legal_hold_blocks_deletion_until_released(store):
    info = await store.put("k/held.xml", b"<x/>", legal_hold=True)
    with pytest.raises(S3Error):
        await store.delete("k/held.xml", version_id=info.version_id)
    await store.set_legal_hold("k/held.xml", False)
    await store.delete("k/held.xml", version_id=info.version_id)
    assert not await store.exists("k/held.xml")


async def test_contract_put_get_stat_stream(any_store):
    """The same behaviour from the fake and the real store, so the fake stays honest."""
    data = bytes(range(256)) * 1000
    info = await any_store.put("a/b.bin", data, "application/octet-stream")
    assert info.size == len(data)
    assert await any_store.get("a/b.bin") == data
    assert await any_store.exists("a/b.bin") and not await any_store.exists("a/missing")
    st = await any_store.stat("a/b.bin")
    assert st is not None and st.sha256 == info.sha256 and st.content_type == "application/octet-stream"
    chunks = [c async for c in any_store.stream("a/b.bin", chunk_size=10000)]
    assert b"".join(chunks) == data and len(chunks) > 1


async def test_a_refused_put_is_a_clear_error_without_the_secret(store, minio_up):
    wrong = S3BlobStore(f"127.0.0.1:{STACK['SPVHUB_MINIO_PORT']}", STACK["SPVHUB_MINIO_USER"], "not-the-secret",
                        store.bucket)
    # skip the region lookup, which the wrong key would fail too
    wrong._signer = _PutSigner.for_bucket(wrong.client, store.bucket, "us-east-1")
    try:
        with pytest.raises(BlobStoreError) as exc:
            await wrong.put("k/refused.zip", b"x", "application/zip")
    finally:
        await wrong.aclose()
    assert exc.value.status == 403 and exc.value.code == "SignatureDoesNotMatch"
    assert wrong.requests_sent == 1  # a 4xx is not retried
    assert "not-the-secret" not in str(exc.value)
    assert not await store.exists("k/refused.zip")


@pytest.mark.parametrize("endpoint,secure,key,token", [
    ("127.0.0.1:19000", False, "efactura/12345678/3001/3001.zip", None),
    ("s3.eu-central-1.amazonaws.com", True, "a key/with spaces~and+plus/ț.zip", "session-tok"),
])
def test_the_put_signer_signs_as_minios_own_signer(endpoint, secure, key, token):
    from minio import Minio
    from minio.credentials import Credentials
    from minio.signer import sign_v4_s3
    from minio.time import to_amz_date
    client = Minio(endpoint, access_key="AKIAEXAMPLE", secret_key="wJalrXUtnFEMI/K7MDENG", secure=secure,
                   region="eu-central-1")
    creds = Credentials("AKIAEXAMPLE", "wJalrXUtnFEMI/K7MDENG", token)
    data = b"PK\x03\x04 zip bytes"
    digest = hashlib.sha256(data).hexdigest()
    headers = {"x-amz-meta-sha256": digest, "Content-Type": "application/zip", "If-None-Match": "*",
               "x-amz-object-lock-mode": "COMPLIANCE",
               "x-amz-object-lock-retain-until-date": "2036-12-03T03:12:45.182Z"}
    when = datetime(2026, 12, 6, 3, 4, 5, tzinfo=UTC)
    signer = _PutSigner.for_bucket(client, "bucket-1", "eu-central-1")
    for _ in range(2):  # the second request uses the cached signing key
        url, ours = signer.sign(key, headers, len(data), digest, creds, amz_date=to_amz_date(when))
        minio_url = client._base_url.build(method="PUT", region="eu-central-1", bucket_name="bucket-1", object_name=key)
        theirs = {**headers, "Host": minio_url.netloc, "Content-Length": str(len(data)),
                  "x-amz-content-sha256": digest, "x-amz-date": to_amz_date(when)}
        if token:
            theirs["X-Amz-Security-Token"] = token
        theirs = sign_v4_s3(method="PUT", url=minio_url, region="eu-central-1", headers=theirs, credentials=creds,
                            content_sha256=digest, date=when)
        assert str(url) == minio_url.geturl()
        assert ours == theirs
