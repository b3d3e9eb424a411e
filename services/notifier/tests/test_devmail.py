"""The SMTP capture (spvhub_devtools.devmail): stores real SMTP deliveries, serves them over HTTP, injects faults."""
from __future__ import annotations

import smtplib
from email.message import EmailMessage

import httpx
import pytest
from spvhub_devtools.devmail import DevMail


def _send(port: int, to: str = "ana@example.ro", subject: str = "Bună ziua") -> None:
    msg = EmailMessage()
    msg["From"] = "spvhub <noreply@spvhub.local>"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("Textul în română: ăâîșț")
    msg.add_alternative("<p>Textul în <b>română</b></p>", subtype="html")
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as s:
        s.send_message(msg)


def test_captures_and_serves_messages(tmp_path):
    with DevMail(directory=tmp_path) as dm:
        _send(dm.smtp_port)
        _send(dm.smtp_port, to="ion@example.ro", subject="Al doilea")
        msgs = httpx.get(f"{dm.http_url}/messages").json()
        assert [m["subject"] for m in msgs] == ["Bună ziua", "Al doilea"]
        assert msgs[0]["to"] == ["ana@example.ro"] and "ăâîșț" in msgs[0]["text"] and "<b>" in msgs[0]["html"]
        assert httpx.get(f"{dm.http_url}/messages", params={"to": "ion@example.ro"}).json()[0]["subject"] == "Al doilea"
        one = httpx.get(f"{dm.http_url}/messages/{msgs[0]['id']}").json()
        assert one["id"] == msgs[0]["id"]
        assert httpx.get(f"{dm.http_url}/messages/nope").status_code == 404
    # stored on disk: a new server on the same directory sees them
    with DevMail(directory=tmp_path) as dm2:
        assert len(httpx.get(f"{dm2.http_url}/messages").json()) == 2
        assert httpx.delete(f"{dm2.http_url}/messages").status_code == 200
        assert httpx.get(f"{dm2.http_url}/messages").json() == []
    assert not list(tmp_path.glob("*.eml"))


def test_fault_switches_refuse_then_recover():
    with DevMail() as dm:
        r = httpx.post(f"{dm.http_url}/fault", json={"refuse": True})
        assert r.json() == {"refuse": True, "mode": "connect", "fail_next": 0}
        with pytest.raises(OSError):
            _send(dm.smtp_port)
        httpx.post(f"{dm.http_url}/fault", json={"refuse": True, "mode": "reply"})
        with pytest.raises(smtplib.SMTPException):
            _send(dm.smtp_port)
        httpx.post(f"{dm.http_url}/fault", json={"refuse": False, "fail_next": 1})
        with pytest.raises(smtplib.SMTPDataError):
            _send(dm.smtp_port)
        _send(dm.smtp_port)
        assert len(httpx.get(f"{dm.http_url}/messages").json()) == 1
