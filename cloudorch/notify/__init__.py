"""Notifications: the events a run raises (`events`), who hears of them (`targets`, from the plan's
`notifications:`, `--notify` and `CLOUDORCH_NOTIFY`), the JSON payload and its HMAC-SHA256
signature (`payload`, `signing`), delivery by HTTPS webhook or apprise (`delivery`), and the
durable outbox that retries what was not delivered (`outbox`).

It never decides what a run did and never fails one: delivery problems are warnings.
"""
