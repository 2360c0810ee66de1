"""How to reach the mail servers of a domain: MX lookup with implicit and null MX
(RFC 5321 §5.1, RFC 7505), the choice of route and TLS policy per destination
([[transports]], relayhost, DANE RFC 7672, MTA-STS RFC 8461), and the outbound
SMTP connection that carries it out. Used by the queue's delivery, by sender
address verification callouts and by diagnostics; it knows nothing of queued
messages (what to send and what the replies mean for them is queue/'s).
"""
