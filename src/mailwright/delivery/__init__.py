"""Delivery: what happens to a message once a protocol has received it.

The SMTP session ends at "message received" (received.py). From there an ordered
pipeline of small stages (pipeline.py, stages/) checks it, stamps it, formats and signs
the copies that leave, and stores or queues it; assemble.py says which stages run for
which listener role. Policy lives here, calling the store; the store never calls back.
"""
