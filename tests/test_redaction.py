"""No secret reaches a log line, a traceback included, whatever logger the record comes from."""

from __future__ import annotations

import io
import logging

from channelwatch.redaction import FILTER, redact, register_secret


def test_messages_and_tracebacks_are_redacted() -> None:
    register_secret("wx-app-secret-123456")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(FILTER)
    logger = logging.getLogger("channelwatch.test_redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise RuntimeError("GET https://api.weixin.qq.com/cgi-bin/token?appid=wx1&secret=wx-app-secret-123456")
        except RuntimeError:
            logger.exception("poll wechat failed: %s", "access_token=tok-987654&offset=0")
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert "poll wechat failed: access_token=***&offset=0" in output
    assert "Traceback" in output and "RuntimeError" in output  # the traceback is kept …
    assert "wx-app-secret-123456" not in output and "tok-987654" not in output  # … without the secrets


def test_redact_masks_registered_values_anywhere() -> None:
    register_secret("SUB=cookie-value-abcdef")
    assert redact("请求失败：Cookie SUB=cookie-value-abcdef 已过期") == "请求失败：Cookie *** 已过期"
    assert redact("https://x/?token=abc&page=2") == "https://x/?token=***&page=2"


def test_the_forms_a_secret_travels_in_are_masked_too() -> None:
    import base64
    from urllib.parse import quote

    from channelwatch.redaction import upstream

    password = "p@ss word/+=ä-2026"
    register_secret(password, username="tongji@example.gov.cn")
    plain = base64.b64encode(b"\0tongji@example.gov.cn\0" + password.encode()).decode()
    login = base64.b64encode(password.encode()).decode()
    for form in (password, quote(password, safe=""), plain, login):
        assert form not in redact(f"535 rejected {form} again"), form
    register_secret("SUB=_2A25abcdefgh-cookie; SUBP=0033WrSXqPxfM72-Ws9jqgMF55529P9D9W5")
    assert "_2A25abcdefgh-cookie" not in redact("cookie _2A25abcdefgh-cookie expired")
    assert upstream(f"554 no\r\n250 OK fake line {password}\n", 40) == "554 no 250 OK fake line ***"
