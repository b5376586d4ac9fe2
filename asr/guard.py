"""Who may talk to `asr serve`, and how much one client may hold.

The checks every request passes before a handler sees it (asr/server.py's middleware):

- Host: a name the server answers to. A web page on another site can make the browser send
  requests to 127.0.0.1 under the page's own name once its DNS points there (DNS rebinding);
  the Host header still carries that name. IP literals, `localhost` (and *.localhost), the
  --host value and --allow-host names are accepted (as webpack's dev server does by default).
- Origin: browsers send it with every WebSocket handshake and POST; a request from another
  site's page carries that site's origin. Accepted: no Origin (curl, Vosk clients, the openai
  client), the server's own origin (the page it serves), and --allow-origin values.
- API key (--api-key): `Authorization: Bearer KEY`, as OpenAI's clients send it, on the API
  and on WebSocket handshakes; a browser cannot set headers on a WebSocket, so there the key
  may come as `?api_key=KEY`. The page's own files need no key (they hold no secret).
- Per client address: WebSocket connections and HTTP requests in progress (--max-per-client),
  so one address cannot take every slot.

Errors are answered in OpenAI's shape (openai_api.TranscriptionAPI.error). Requests aiohttp's
parser refuses before any handler runs (broken or oversized request lines and headers) get
the same shape and one log line (`quiet_parse_errors`), not a traceback each.
"""
from __future__ import annotations

import hmac
import ipaddress
import logging
from urllib.parse import urlsplit

log = logging.getLogger("asr.server")

# The page's Content-Security-Policy: its own scripts, styles and sockets only, never framed.
# style-src-attr: the legend's shaded words carry inline style attributes.
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
            "img-src 'self' data:; connect-src 'self' blob: {sockets}; media-src 'self'; object-src 'none'; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}  # on every response
PAGE_HEADERS = {"X-Frame-Options": "DENY"}  # and the CSP, on the page


class Refused(Exception):
    """A request refused before its handler: status, message, OpenAI error code."""

    def __init__(self, status: int, message: str, code: str):
        super().__init__(message)
        self.status, self.code = status, code


def _split_host(value: str) -> tuple[str, int | None]:
    """'Example.COM:8080' -> ('example.com', 8080); '[::1]:2700' -> ('::1', 2700)."""
    value = value.strip().lower()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        host, port = value.split(":")
    else:
        host, port = value, ""
    return host.rstrip("."), int(port) if port.isdigit() else None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def normal_origin(origin: str) -> str:
    """'HTTPS://Example.com:443' -> 'https://example.com' (how origins are compared)."""
    parts = urlsplit(origin.strip())
    scheme = parts.scheme.lower()
    host, port = _split_host(parts.netloc)
    default = {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(scheme)
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}" + (f":{port}" if port is not None and port != default else "")


def client_key(remote: str | None) -> str:
    """What counts as one client: its IPv4 address, or its IPv6 /64 (one host's share)."""
    try:
        ip = ipaddress.ip_address(remote or "")
    except ValueError:
        return remote or "?"
    if ip.version == 6:
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class Guard:
    """The checks of one server (its config: host, allow_hosts, allow_origins, api_key)."""

    def __init__(self, config):
        self.config = config
        self.hosts = {h.lower().rstrip(".") for h in (config.host, *config.allow_hosts)}
        self.origins = {o if o == "*" else normal_origin(o) for o in config.allow_origins}

    def host_ok(self, host_header: str | None) -> bool:
        if host_header is None:  # HTTP/1.0 without Host: not a browser (browsers always send one)
            return True
        host, _ = _split_host(host_header)
        return (_is_ip(host) or host == "localhost" or host.endswith(".localhost") or host in self.hosts
                or "*" in self.hosts)

    def origin_ok(self, origin: str | None, host_header: str | None) -> bool:
        if origin is None:
            return True
        if "*" in self.origins:
            return True
        if origin.strip().lower() == "null":  # sandboxed frames, file:// pages
            return False
        try:
            mine = normal_origin(origin)
        except ValueError:
            return False
        if mine in self.origins:
            return True
        # the page the server serves: the origin names the host (and port) the request went to
        scheme = mine.split("://", 1)[0]
        return host_header is not None and mine == normal_origin(f"{scheme}://{host_header}")

    def key_ok(self, authorization: str | None, query_key: str | None) -> bool:
        key = self.config.api_key
        if not key:
            return True
        given = ""
        if authorization and authorization[:7].lower() == "bearer ":
            given = authorization[7:].strip()
        elif query_key is not None:
            given = query_key
        return hmac.compare_digest(given.encode(), key.encode())

    def check(self, request, needs_key: bool, websocket: bool = False) -> None:
        """Raise Refused for a request that may not be served (needs_key: the API or a WebSocket;
        a WebSocket handshake may carry the key as ?api_key=)."""
        host = request.headers.get("Host")
        if not self.host_ok(host):
            raise Refused(403, f"Host {host[:100]!r} is not a name of this server; start it with "
                               "--allow-host NAME to serve that name", "host_not_allowed")
        origin = request.headers.get("Origin")
        if not self.origin_ok(origin, host):
            raise Refused(403, f"cross-origin request from {origin[:100]!r} refused; start the server with "
                               "--allow-origin ORIGIN to allow that site", "origin_not_allowed")
        if needs_key and not self.key_ok(request.headers.get("Authorization"),
                                         request.query.get("api_key") if websocket else None):
            given = "Authorization" in request.headers or (websocket and "api_key" in request.query)
            raise Refused(401, "incorrect API key provided" if given else
                          "this server needs an API key: send `Authorization: Bearer KEY`", "invalid_api_key")


class PerClient:
    """What each client address holds now (WebSocket connections and HTTP requests in progress)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.held: dict[str, int] = {}

    def take(self, remote: str | None) -> str | None:
        """The client's key, counted in; None when it already holds its limit."""
        key = client_key(remote)
        if self.held.get(key, 0) >= self.limit:
            return None
        self.held[key] = self.held.get(key, 0) + 1
        return key

    def give_back(self, key: str) -> None:
        left = self.held[key] - 1
        if left:
            self.held[key] = left
        else:
            del self.held[key]


def quiet_parse_errors(server, error_body) -> None:
    """Make an aiohttp web.Server answer the requests its parser refuses (broken or oversized
    request lines and headers, ...) with error_body(status, message) as JSON and one log line,
    instead of a text page and a traceback at ERROR each (a log flood). A failure inside a
    handler (status 500) keeps aiohttp's handling: that is a bug, and its traceback is wanted."""
    from aiohttp import web, web_protocol

    class Handler(web_protocol.RequestHandler):
        def handle_error(self, request, status=500, exc=None, message=None):
            if status < 400 or status >= 500:
                return super().handle_error(request, status, exc, message)
            reason = str(getattr(exc, "message", None) or exc or message or "bad request")
            reason = "".join(c if c.isprintable() else " " for c in reason.split("\n")[0])[:200]
            log.info("bad request from %s: %s", request.remote, reason)
            if request.writer.output_size > 0:
                raise ConnectionError("the response was already started")
            response = web.json_response(error_body(status, f"bad request: {reason}"), status=status,
                                         headers=HEADERS)
            response.force_close()
            return response

    class Server(type(server)):
        def __call__(self):
            return Handler(self, loop=self._loop, **self._kwargs)
    server.__class__ = Server
