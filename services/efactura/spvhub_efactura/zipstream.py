"""An incremental ZIP writer for HTTP streaming in constant memory: `zipfile` writes to a non-seekable sink
(so it emits data descriptors) whose bytes are drained after every chunk."""
from __future__ import annotations

import zipfile
from collections.abc import AsyncIterator
from datetime import datetime


class _Sink:
    """Write-only, non-seekable file object: zipfile appends, the generator takes the bytes out."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    def write(self, data: bytes) -> int:
        self._buf += data
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        pass

    def seekable(self) -> bool:
        return False

    def take(self) -> bytes:
        out = bytes(self._buf)
        self._buf.clear()
        return out


class ZipStream:
    """`async for chunk in ZipStream(entries)`: entries yield (name, modified, async iterator of bytes)."""

    def __init__(self, entries: AsyncIterator[tuple[str, datetime | None, AsyncIterator[bytes]]],
                 compress: bool = True) -> None:
        self.entries = entries
        self.compress = compress

    async def __aiter__(self) -> AsyncIterator[bytes]:  # type: ignore[override]
        sink = _Sink()
        zf = zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_DEFLATED if self.compress
                             else zipfile.ZIP_STORED, allowZip64=True)
        async for name, modified, chunks in self.entries:
            info = zipfile.ZipInfo(name, date_time=(modified or datetime(1980, 1, 1)).timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED if self.compress else zipfile.ZIP_STORED
            with zf.open(info, mode="w", force_zip64=False) as fh:
                async for chunk in chunks:
                    fh.write(chunk)
                    out = sink.take()
                    if out:
                        yield out
            out = sink.take()
            if out:
                yield out
        zf.close()
        out = sink.take()
        if out:
            yield out
