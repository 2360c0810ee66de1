"""Who loaded a pixel or followed a link: a user-agent class, and whether it was a
machine rather than the recipient.

Rules, first match wins (the sources are in docs/EVENTS.md "Machine opens and clicks"):
- Apple Mail Privacy Protection: Apple's proxies fetch every remote image of a
  message when it is delivered, whether or not it is read, with the bare user agent
  "Mozilla/5.0" (no platform, no engine). -> apple-mpp, machine.
- Link and attachment scanners of mail security gateways (Microsoft Defender Safe
  Links, Proofpoint, Mimecast, Barracuda, Cisco, Trend Micro, Symantec, Sophos,
  Forcepoint, FireEye) and generic HTTP clients or crawlers (curl, wget, python,
  Go, Java, headless browsers, anything saying bot/crawler/spider/scanner/preview),
  an empty user agent, and HEAD requests. -> scanner / bot, machine.
- Image proxies of webmail that fetch when the recipient opens the message (Gmail's
  GoogleImageProxy, Yahoo's YahooMailProxy): the load is the recipient's open, only
  routed through the provider; later opens are served from its cache and not seen.
  -> proxy-google / proxy-yahoo, human.
- anything else: a mail client or browser on the recipient's device. -> client, human.
"""

from __future__ import annotations

import re

APPLE_MPP = "apple-mpp"
SCANNER = "scanner"
BOT = "bot"
CLIENT = "client"

_PROXIES = (("googleimageproxy", "proxy-google"), ("yahoomailproxy", "proxy-yahoo"))
_SCANNERS = re.compile(
    r"safelinks|defender|proofpoint|mimecast|barracuda|ironport|cisco|trend ?micro|"
    r"symantec|messagelabs|sophos|forcepoint|fireeye|trellix|zscaler|checkpoint|"
    r"bitdefender|avanan|abnormal", re.I)
_BOTS = re.compile(
    r"bot\b|bot/|crawler|spider|scanner|preview|headless|phantomjs|curl/|wget/|"
    r"python-|python/|aiohttp|httpx|go-http-client|java/|okhttp|libwww|apache-httpclient|"
    r"node-fetch|axios", re.I)


def classify(user_agent: str, method: str = "GET") -> tuple[str, bool]:
    """(user-agent class, machine) of one request."""
    ua = user_agent.strip()
    if ua == "Mozilla/5.0":
        return APPLE_MPP, True
    lowered = ua.lower()
    for needle, name in _PROXIES:
        if needle in lowered:
            return name, False
    if _SCANNERS.search(ua):
        return SCANNER, True
    if not ua or method == "HEAD" or _BOTS.search(ua):
        return BOT, True
    return CLIENT, False
