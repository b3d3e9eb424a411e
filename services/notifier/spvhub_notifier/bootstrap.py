"""Composition root of the notifier service: the only place that builds engines, clients and adapters."""
from __future__ import annotations

from fastapi import FastAPI
from spvhub_common.clock import Clock, make_clock
from spvhub_common.http import create_app
from spvhub_common.runtime import ServiceRuntime

from spvhub_notifier import consumers, jobs
from spvhub_notifier.adapters.account_links import AccountLinks, HttpAccountLinks
from spvhub_notifier.adapters.invitations_client import HttpInvitationLinks, InvitationLinks
from spvhub_notifier.adapters.orm import outbox
from spvhub_notifier.adapters.smtp import EmailSender, SmtpSender
from spvhub_notifier.adapters.templates import Renderer
from spvhub_notifier.api import router
from spvhub_notifier.handlers import Deps
from spvhub_notifier.settings import Settings, get_settings


def build(settings: Settings | None = None, *, clock: Clock | None = None, sender: EmailSender | None = None,
          links: InvitationLinks | None = None, account_links: AccountLinks | None = None,
          **runtime_kw: bool) -> tuple[FastAPI, ServiceRuntime]:
    settings = settings or get_settings()
    runtime = ServiceRuntime(settings, outbox, **runtime_kw)
    token = settings.service_token.get_secret_value()
    deps = Deps(
        uow=runtime.uow, clock=clock or make_clock(settings.clock_url), renderer=Renderer(),
        sender=sender or smtp_sender(settings),
        links=links or HttpInvitationLinks(settings.invitations_url, token),
        account_links=account_links or HttpAccountLinks(settings.auth_base, token),
        links_base=settings.links_base, ui_paths=settings.ui_paths, mail_from=settings.mail_from,
        retry_base=settings.email_retry_base, retry_max=settings.email_retry_max,
        max_attempts=settings.email_max_attempts, lease=settings.email_lease, batch=settings.email_batch,
        send_interval=settings.email_send_interval, digest_interval=settings.digest_interval)
    consumers.register(runtime, deps)
    jobs.register(runtime, deps)

    app = create_app(settings, title="spvhub notifier",
                     description="In-app notification inbox, e-mail outbox and delivery log, per-user preferences.",
                     routers=[router], lifespan=runtime.lifespan())
    app.state.deps = deps
    app.state.runtime = runtime
    return app, runtime


def smtp_sender(settings: Settings) -> SmtpSender:
    return SmtpSender(settings.smtp_host, settings.smtp_port, settings.smtp_username,
                      settings.smtp_password.get_secret_value(), settings.smtp_starttls, settings.smtp_ssl,
                      settings.smtp_timeout)


def build_app() -> FastAPI:
    return build()[0]
