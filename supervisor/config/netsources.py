"""The network datasources: ``url:URL`` (a cloud-config over HTTP(S), RancherOS's ``url:``) and ``ec2``
/ ``ec2:ADDRESS`` (EC2-style instance metadata: IMDSv2 token, user-data, instance-id, hostname, SSH keys;
RancherOS's ``ec2``, default address 169.254.169.254).

They run on the config worker thread (blocking urllib, never on PID 1's loop), each request with a
timeout, a failed exchange retried a bounded number of times with a growing pause, every body bounded
like a config file (``decode_config``). What a network datasource gave is kept for the boot (cloud-init
reads its datasource once per boot too): a reload does not fetch again. Before boot's network is up
(``DatasourceContext.network_ready``) they fetch nothing and say so; boot loads the config again once the
network phase is done."""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from supervisor.backoff import Backoff
from supervisor.config.errors import DOCUMENT, ConfigError
from supervisor.config.fetched import DatasourceContext, Fetched, add_user_data
from supervisor.config.yamlload import MAX_BYTES, decode_config

EC2_DEFAULT = "http://169.254.169.254"
TOKEN_TTL = "21600"


class NotThere(Exception):
    """The server answered 404: the document is not there (not worth retrying)."""


@dataclass(frozen=True)
class Retry:
    """How hard a network datasource tries: ``attempts`` per request, ``timeout`` seconds each, pauses
    of ``pause``, doubled after each failure (5 attempts: 0.5 + 1 + 2 + 4 s of pauses at most): the
    shared backoff policy (supervisor/backoff.py)."""

    attempts: int = 5
    timeout: float = 3.0
    pause: float = 0.5

    def backoff(self) -> Backoff:
        return Backoff(first=self.pause, initial=2 * self.pause, cap=self.pause * 2 ** self.attempts)


class Http:
    """Bounded HTTP exchanges with retries; ``get`` returns the body (at most MAX_BYTES + 1 bytes)."""

    def __init__(self, retry: Retry, sleep: Callable[[float], None] = time.sleep) -> None:
        self.retry = retry
        self._sleep = sleep
        # never through a proxy from the environment: the metadata service is link-local
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def request(self, url: str, method: str = "GET", headers: dict[str, str] | None = None,
                limit: int = MAX_BYTES) -> bytes:
        """The body, at most ``limit`` + 1 bytes read (more than ``limit``: the caller's "too large");
        NotThere on 404; the last error (OSError, urllib's HTTPError) when every attempt failed."""
        backoff = self.retry.backoff()
        for attempt in range(1, self.retry.attempts + 1):
            req = urllib.request.Request(url, method=method, headers=headers or {})
            try:
                with urllib.request.urlopen(req, timeout=self.retry.timeout) as response:
                    body: bytes = response.read(limit + 1)
                    return body
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    raise NotThere(url) from exc
                if exc.code < 500 or attempt == self.retry.attempts:  # 4xx: asking again changes nothing
                    raise
            except OSError:  # refused, unreachable, timed out, reset
                if attempt == self.retry.attempts:
                    raise
            self._sleep(backoff.delay_for(attempt))
        raise AssertionError("unreachable")


def why_failed(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__


def check_url(url: str, what: str) -> str:
    parts = urllib.parse.urlsplit(url)
    try:
        parts.port  # noqa: B018 -- a port that is not a number raises ValueError
    except ValueError:
        raise ValueError(f"{what}: {url!r} has a bad port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} needs an http:// or https:// URL with a host (got {url!r})")
    return url.rstrip("/")


class _NetworkDatasource:
    spec: str
    retry = Retry()

    def fetch(self, ctx: DatasourceContext) -> Fetched:
        if not ctx.network_ready:
            return Fetched(notes=[f"{self.spec}: waiting for the network"], pending=True)
        if self.spec in ctx.cache:
            return ctx.cache[self.spec]
        out = Fetched()
        try:
            self.get(Http(self.retry, ctx.sleep), out)
        except (OSError, ValueError) as exc:  # HTTPError and URLError are OSErrors
            why = f"{self.describe()}: {why_failed(exc)} after {self.retry.attempts} tries"
            out.warnings.append(ConfigError(self.spec, DOCUMENT, f"{why}: skipped"))
            out.notes.append(f"{self.spec}: nothing ({why})")
            return out  # not kept: the next load tries again
        ctx.cache[self.spec] = out
        return out

    def describe(self) -> str:
        raise NotImplementedError

    def get(self, http: Http, out: Fetched) -> None:
        raise NotImplementedError


class UrlDatasource(_NetworkDatasource):
    """``url:URL``: the body is user-data (a cloud-config)."""

    def __init__(self, arg: str) -> None:
        self.url = check_url(arg, "the url datasource")
        self.spec = f"url:{arg}"

    def describe(self) -> str:
        return self.url

    def get(self, http: Http, out: Fetched) -> None:
        try:
            body = http.request(self.url)
        except NotThere:
            out.warnings.append(ConfigError(self.spec, DOCUMENT, f"{self.url}: HTTP 404: skipped"))
            out.notes.append(f"{self.spec}: nothing (HTTP 404)")
            return
        text, errors = decode_config(body, self.url)
        out.warnings.extend(errors)
        if text is not None:
            add_user_data(self.url, text, out)
        out.notes.append(f"{self.spec}: user-data")


class Ec2Datasource(_NetworkDatasource):
    """``ec2`` or ``ec2:ADDRESS`` (an IP address, a host:port or an http:// URL): the instance metadata
    service, IMDSv2 (a session token from ``PUT /latest/api/token``) or, when that is refused, IMDSv1."""

    def __init__(self, arg: str) -> None:
        base = arg if "://" in arg else f"http://{arg}" if arg else EC2_DEFAULT
        self.base = check_url(base, "the ec2 datasource")
        self.spec = f"ec2:{arg}" if arg else "ec2"

    def describe(self) -> str:
        return self.base

    def get(self, http: Http, out: Fetched) -> None:
        headers: dict[str, str] = {}
        try:
            token = http.request(f"{self.base}/latest/api/token", "PUT",
                                 {"X-aws-ec2-metadata-token-ttl-seconds": TOKEN_TTL})
            headers["X-aws-ec2-metadata-token"] = token.decode("ascii", "replace").strip()
        except (NotThere, urllib.error.HTTPError) as exc:  # no IMDSv2 here (403/404/405): IMDSv1
            if isinstance(exc, urllib.error.HTTPError) and exc.code >= 500:
                raise

        def text(path: str) -> str | None:
            try:
                body = http.request(f"{self.base}/latest/{path}", headers=headers)
            except NotThere:
                return None
            value, errors = decode_config(body, f"{self.base}/latest/{path}")
            out.warnings.extend(errors)
            return value

        instance = text("meta-data/instance-id")
        if instance is None:
            raise urllib.error.URLError("no meta-data/instance-id: not an EC2 metadata service")
        config: dict[str, object] = {}
        hostname = (text("meta-data/local-hostname") or text("meta-data/hostname") or "").strip()
        if hostname:
            config["hostname"] = hostname
        keys: list[str] = []
        for line in (text("meta-data/public-keys/") or "").splitlines():
            index = line.split("=", 1)[0].strip()
            if index.isdigit():
                key = text(f"meta-data/public-keys/{index}/openssh-key")
                keys.extend(k.strip() for k in (key or "").splitlines() if k.strip())
        if keys:
            config["ssh_authorized_keys"] = keys
        user = text("user-data")
        found = []
        if user is not None:
            add_user_data(f"{self.base}/latest/user-data", user, out)
            found.append("user-data")
        if config:
            out.metadata.append((f"{self.base}/latest/meta-data", config))
        found.extend(k for k in ("hostname", "ssh_authorized_keys") if k in config)
        names = ", ".join(found).replace("ssh_authorized_keys", f"{len(keys)} ssh key(s)")
        out.notes.append(f"{self.spec}: {self.base}: {names or 'no user-data, hostname or keys'} "
                         f"(instance-id {instance.strip()})")
