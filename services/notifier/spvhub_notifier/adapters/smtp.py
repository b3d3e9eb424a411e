"""E-mail over SMTP (stdlib smtplib in a worker thread) and an in-memory fake for unit tests."""
from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Protocol


class PermanentFailure(Exception):
    """The server refused the message for good (5xx): retrying will not help."""


class TemporaryFailure(Exception):
    """The server could not take the message now (connection refused, 4xx, timeout): retry later."""


class EmailSender(Protocol):
    async def send(self, msg: EmailMessage) -> None:
        """Deliver or raise PermanentFailure / TemporaryFailure."""


@dataclass
class SmtpSender:
    host: str
    port: int
    username: str = ""
    password: str = ""
    starttls: bool = False
    use_ssl: bool = False
    timeout: float = 10.0

    def _send_sync(self, msg: EmailMessage) -> None:
        try:
            cls = smtplib.SMTP_SSL if self.use_ssl else smtplib.SMTP
            with cls(self.host, self.port, timeout=self.timeout) as s:
                if self.starttls:
                    s.starttls(context=ssl.create_default_context())
                if self.username:
                    s.login(self.username, self.password)
                s.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [c for c, _ in exc.recipients.values()]
            if codes and all(500 <= c < 600 for c in codes):
                raise PermanentFailure(f"recipients refused: {exc.recipients}") from exc
            raise TemporaryFailure(f"recipients refused: {exc.recipients}") from exc
        except smtplib.SMTPResponseException as exc:
            text = f"{exc.smtp_code} {exc.smtp_error!r}"
            if 500 <= exc.smtp_code < 600:
                raise PermanentFailure(text) from exc
            raise TemporaryFailure(text) from exc
        except (smtplib.SMTPException, OSError) as exc:  # connection refused/reset, timeouts, disconnects
            raise TemporaryFailure(f"{type(exc).__name__}: {exc}") from exc

    async def send(self, msg: EmailMessage) -> None:
        await asyncio.to_thread(self._send_sync, msg)


@dataclass
class FakeSender:
    sent: list[EmailMessage] = field(default_factory=list)
    fail_with: Exception | None = None

    async def send(self, msg: EmailMessage) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append(msg)
