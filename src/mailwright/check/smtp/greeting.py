"""Connect, greeting and the names the server gives: connect and greeting time (a
slow greeting is a tarpit or a greet pause, reported, never a failure), a 4xx/5xx
greeting, and the greeting and EHLO names against the PTR of the address and its
forward confirmation."""

from __future__ import annotations

from ...dns import DNSError, NXDomain, Resolver
from ..findings import Finding, Severity
from .session import SLOW_GREETING, NoGreeting, Refused, Session, Target, describe_error

WHY_CONNECT = "RFC 5321 §4.5.3.2: senders reach the server on its port or queue and retry"
WHY_GREETING = "RFC 5321 §4.3.1: a 220 greeting opens the session; 4xx means come back later"
WHY_NAME = ("RFC 5321 §4.2 (greeting) and §4.1.1.1 (EHLO) name the server; receivers and "
            "spam filters compare it with the PTR of its address (FCrDNS)")


def connect_failed(target: Target, error: BaseException) -> list[Finding]:
    """No session: the connection itself, or the greeting, went wrong."""
    if isinstance(error, Refused):
        return [_refused_greeting(target, error)]
    if isinstance(error, NoGreeting):
        # Connected, but nothing said within the timeout: a tarpit longer than our
        # patience, or a hung server. Senders wait 5 minutes (RFC 5321 §4.5.3.2.1).
        return [target.finding(
            "smtp.greeting", Severity.WARN,
            f"connected, but no greeting within {target.timeout:g} s",
            WHY_GREETING + "; senders wait up to 5 minutes (§4.5.3.2.1)",
            "greet promptly: a pause longer than a minute makes senders retry later")]
    return [target.finding("smtp.connect", Severity.FAIL,
                           f"cannot connect: {describe_error(error)}", WHY_CONNECT,
                           "check that the server listens on this address and port and that "
                           "no firewall drops the connection")]


def _refused_greeting(target: Target, error: Refused) -> Finding:
    reply = error.reply
    if error.what != "greeting":
        return target.finding("smtp.ehlo", Severity.WARN if reply.code < 500 else Severity.FAIL,
                              f"EHLO and HELO refused: {reply}",
                              "RFC 5321 §4.1.1.1: a client must be able to greet the server",
                              "accept EHLO from any client")
    if 400 <= reply.code < 500:
        # Greylisting-style temporary refusal or a busy server: mail is retried, not lost.
        return target.finding("smtp.greeting", Severity.WARN,
                              f"temporary refusal as greeting: {reply}", WHY_GREETING,
                              "if this is not deliberate (rate limit, maintenance), find why "
                              "the server refuses sessions")
    return target.finding("smtp.greeting", Severity.FAIL,
                          f"refusal as greeting (perhaps of this client's address only): "
                          f"{reply}",
                          WHY_GREETING + "; 554 refuses all mail from this client",
                          "greet with 220; refuse individual transactions instead")


def session_findings(target: Target, session: Session) -> list[Finding]:
    """Connect and greeting times of a session that started."""
    ms = round(session.connect_time * 1000)
    out = [target.finding("smtp.connect", Severity.PASS, f"connected in {ms} ms")]
    greeted = session.greeting_time
    if greeted >= SLOW_GREETING:
        out.append(target.finding(
            "smtp.greeting", Severity.INFO,
            f"greeting after {greeted:.1f} s (a tarpit or greet pause, not a fault): "
            f"{session.greeting}",
            WHY_GREETING + "; senders wait up to 5 minutes (§4.5.3.2.1)",
            "nothing, if the pause is deliberate (it deters spam bots)"))
    else:
        out.append(target.finding("smtp.greeting", Severity.PASS,
                                  f"greeting after {greeted * 1000:.0f} ms: {session.greeting}"))
    return out


async def name_findings(target: Target, session: Session, resolver: Resolver) -> list[Finding]:
    """The greeting's and EHLO's names against the confirmed PTR names of the address."""
    confirmed, problem = await confirmed_ptr(resolver, target.ip)
    out = []
    greeting_name = _first_word(session.greeting.lines[0])
    ehlo_name = _first_word(session.ehlo.lines[0]) if session.ehlo else ""
    for id, what, name in (("smtp.greeting.name", "greeting", greeting_name),
                           ("smtp.ehlo.name", "EHLO reply", ehlo_name)):
        if problem:
            out.append(target.finding(id, Severity.WARN if confirmed is not None else
                                      Severity.INFO, f"{what} names {name or '(nothing)'}; "
                                      f"{problem}", WHY_NAME,
                                      "publish a PTR for the address naming the host, and "
                                      "an A/AAAA record for that name"))
        elif name.lower().rstrip(".") in confirmed:
            out.append(target.finding(id, Severity.PASS,
                                      f"{what} names {name}, the PTR of {target.ip}"))
        else:
            out.append(target.finding(id, Severity.WARN,
                                      f"{what} names {name or '(nothing)'}, the PTR of "
                                      f"{target.ip} is {', '.join(sorted(confirmed))}",
                                      WHY_NAME,
                                      "make the server's hostname the PTR name of its address"))
    return out


async def confirmed_ptr(resolver: Resolver, ip: str) -> tuple[set[str] | None, str]:
    """The PTR names of ip that resolve back to it (FCrDNS, RFC 8601 §3 "iprev"), and a
    description of what is wrong when there are none. None: the lookup itself failed."""
    try:
        names = await resolver.ptr(ip)
    except NXDomain:
        names = []
    except DNSError as e:
        return None, f"PTR lookup for {ip} failed: {e}"
    if not names:
        return set(), f"no PTR record for {ip}"
    confirmed = set()
    for name in names:
        try:
            if ip in await resolver.addresses(name):
                confirmed.add(name.lower().rstrip("."))
        except DNSError:
            continue
    if not confirmed:
        return set(), (f"the PTR of {ip} ({', '.join(names)}) does not resolve back to it "
                       "(no forward confirmation)")
    return confirmed, ""


def _first_word(line: str) -> str:
    return line.split(" ", 1)[0].strip()
