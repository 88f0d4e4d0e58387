"""Sending the console's e-mails (invitations, password resets).

With ``APTIC_SMTP_URL`` set (``smtp://user:password@host:587`` with STARTTLS, ``smtps://...:465`` with TLS
from the start, ``smtp://host:25`` for a local relay) the mail goes through that server, TLS certificates
verified. Without it (the demo, the tests) the mail is written to the central's log instead, so whoever runs
the demo can follow the link: a development convenience, never what a production central should do.
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

log = logging.getLogger("central.mail")

SMTP_ENV = "APTIC_SMTP_URL"
FROM_ENV = "APTIC_MAIL_FROM"


def send(to: str, subject: str, body: str) -> None:
    url = os.environ.get(SMTP_ENV, "")
    message = EmailMessage()
    message["From"] = os.environ.get(FROM_ENV, "console@pass-aptic.invalid")
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    if not url:
        log.info("no SMTP server configured (%s): mail to %s, %r:\n%s", SMTP_ENV, to, subject, body)
        return
    parts = urlsplit(url)
    context = ssl.create_default_context()
    if parts.scheme == "smtps":
        server: smtplib.SMTP = smtplib.SMTP_SSL(parts.hostname or "", parts.port or 465, context=context, timeout=30)
    else:
        server = smtplib.SMTP(parts.hostname or "", parts.port or 25, timeout=30)
    with server:
        if parts.scheme == "smtp" and server.has_extn("starttls"):
            server.starttls(context=context)
        if parts.username:
            server.login(unquote(parts.username), unquote(parts.password or ""))
        server.send_message(message)
    log.info("mail sent to %s: %r", to, subject)
